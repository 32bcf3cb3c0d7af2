"""Three ``roost serve`` processes on one PostgreSQL, as replicas behind a balancer, and what each one must do.

- Concurrent clients serve ads on one replica and click them on another (and
  replay clicks on a third): every acknowledged click is charged exactly once,
  spend never passes a budget, frequency caps hold, and each replica's
  ``/metrics`` counts what it served.
- A replica is SIGKILLed in the middle of a load of serves and clicks: afterwards
  every acknowledged click is charged once, spend is within budget (the issue's
  bound, budget + one max bid per replica in flight, and the store's own, the
  budget), and clicks on the dead replica's ads still work on the others.
- A campaign created through one replica's admin API is served by the others (each follows the catalog).
- SIGTERM during a slow streamed answer: the replica stops listening, the stream
  finishes whole, and then the process exits.

The replicas have no language model (ads with the hashing embedder; generation goes to a stand-in engine
with --llm-url), so they start in seconds. The tests share one cluster and run in this order: the kill
test takes replica 0, the SIGTERM test the last one.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from test_engine_fixtures import live_server
from test_pg_fixtures import closes_pools, fresh_database, pg_server, pg_template, require_postgres  # noqa: F401

from roost.ads.campaign import CampaignSpec
from roost.ads.pgtemp import free_port, temporary_postgres
from roost.ads.store import AdStore

pytestmark = pytest.mark.usefixtures("closes_pools")  # no pool left to the garbage collector

ADMIN = "admin-secret"
REPLICAS = 3


def spec(cid: str, keyword: str, **over) -> CampaignSpec:
    body = {
        "id": cid,
        "advertiser": "Acme",
        "name": cid,
        "bid_type": "cpc",
        "bid": 0.5,
        "budget": 3.0,
        "targeting": {"keywords": [keyword]},
        "creatives": [{"text": f"{keyword} {cid}", "landing_url": f"https://{cid}.example/"}],
    }  # one group's words
    return CampaignSpec.model_validate({**body, **over})


def start_replica(ws: Path, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "roost",
            "serve",
            "--workspace",
            str(ws),
            "--port",
            str(port),
            "--admin-key",
            ADMIN,
            "--rate-limit",
            "0",
            "--max-concurrency",
            "1000",
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"replica exited: {proc.stderr.read()[-3000:]}"
        try:
            r = httpx.get(url + "/ready", timeout=5)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready in 90 s")


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class SlowEngine(http.server.BaseHTTPRequestHandler):
    """An OpenAI-style engine that streams one chunk, then waits until the test lets it finish."""

    release = threading.Event()

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "x"}}]}
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()
        self.release.wait(timeout=60)
        for _ in range(3):
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def do_GET(self):  # noqa: N802 (GET /v1/models: what /ready asks the engine)
        body = json.dumps({"object": "list", "data": [{"id": "roost", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def cluster(pg_server, pg_template, tmp_path_factory):
    """Three replicas on one migrated database. Small budgets run out during the first test; big ones keep the
    second test's traffic flowing (it runs on the same cluster, with its own users)."""
    url = fresh_database(pg_server, pg_template)
    AdStore(url).add_campaigns(
        [
            spec("small", "shoes", budget=2.0, bid=0.4),
            spec("daily", "shoes", budget=50.0, bid=0.45, daily_budget=1.0),
            spec("cpm", "shoes", bid_type="cpm", bid=2.0, budget=2.0),
            spec("capped", "shoes", bid=0.3, budget=50.0, frequency_cap=2),
            spec("big", "shoes", budget=50.0, bid=0.5),
        ]
    )
    ws = tmp_path_factory.mktemp("replicas") / "workspace"
    engine = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowEngine)  # generation for the SIGTERM test
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    llm = f"http://127.0.0.1:{engine.server_port}/v1"
    procs = [start_replica(ws, "--ads-db", url, "--llm-url", llm) for _ in range(REPLICAS)]
    try:
        for proc, base in procs:
            wait_ready(proc, base)
        yield url, procs
    finally:
        SlowEngine.release.set()
        stop([p for p, _ in procs])
        engine.shutdown()


class Load:
    """Clients that serve on one replica and click on the next, remembering what was acknowledged."""

    def __init__(self, urls: list[str], users: str):
        self.urls, self.users = list(urls), users
        self.alive = set(range(len(urls)))
        self.lock = threading.Lock()
        self.served: dict[str, int] = {}  # impression id -> replica that served it (answer received)
        self.campaign: dict[str, str] = {}  # impression id -> its campaign
        self.tokens: list[tuple[str, str]] = []
        self.acked: set[str] = set()  # impressions whose click got its 302
        self.after_kill: set[str] = set()  # acknowledged clicks on the dead replica's ads, made after it died
        self.ok_serves = Counter()  # replica -> /ads/serve 200s
        self.failures = 0

    def pick(self, k: int) -> int:
        with self.lock:
            alive = sorted(self.alive)
        return alive[k % len(alive)]

    def client(self, seed: int, steps: int) -> None:
        with httpx.Client(timeout=30, follow_redirects=False) as http:
            for step in range(steps):
                i = self.pick(seed + step)
                try:
                    r = http.post(
                        self.urls[i] + "/ads/serve",
                        json={"query": "shoes please", "user_id": f"{self.users}{(seed + step) % 40}", "slots": 2},
                    )
                except httpx.HTTPError:
                    with self.lock:
                        self.failures += 1
                    continue
                assert r.status_code == 200, r.text
                mine = [(ad["impression_id"], urlsplit(ad["click_url"]).query) for ad in r.json()["ads"]]
                with self.lock:
                    self.ok_serves[i] += 1
                    self.served.update((imp, i) for imp, _ in mine)
                    self.campaign.update((ad["impression_id"], ad["campaign_id"]) for ad in r.json()["ads"])
                    self.tokens += mine
                for imp, query in mine:
                    self.click(http, imp, query, self.pick(seed + step + 1))
                    if step % 3 == 0:
                        self.click(http, imp, query, self.pick(seed + step + 2))  # a replay, elsewhere

    def click(self, http: httpx.Client, imp: str, query: str, replica: int) -> None:
        try:
            r = http.get(f"{self.urls[replica]}/ads/click?{query}")
        except httpx.HTTPError:
            with self.lock:
                self.failures += 1
            return
        assert r.status_code == 302, r.text
        with self.lock:
            if self.served.get(imp) not in self.alive:
                self.after_kill.add(imp)
            self.acked.add(imp)


def run_clients(load: Load, clients: int, steps: int) -> None:
    threads = [threading.Thread(target=load.client, args=(k * 11, steps)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "clients hung"


def check_money(url: str, load: Load) -> None:
    db = AdStore(url)._conn()
    clicks = dict(db.execute("SELECT impression_id, COUNT(*) FROM clicks GROUP BY impression_id").fetchall())
    assert load.acked and all(clicks.get(imp) == 1 for imp in load.acked), "an acknowledged click is not charged once"
    stored = {r[0] for r in db.execute("SELECT id FROM impressions")}
    assert set(load.served) <= stored, "an impression answered to a client is not in the database"
    for cid, budget, daily, spend, max_bid in db.execute(
        "SELECT id, budget_micros, daily_budget_micros, spend_micros, max_bid_micros FROM campaigns"
    ).fetchall():
        charged = db.execute(
            "SELECT (SELECT COALESCE(SUM(charged_micros), 0) FROM impressions WHERE campaign_id = ?)"
            " + (SELECT COALESCE(SUM(charged_micros), 0) FROM clicks WHERE campaign_id = ?)",
            (cid, cid),
        ).fetchone()[0]
        assert charged == spend, f"{cid}: charges add up to {charged}, spend says {spend}"
        assert spend <= budget + REPLICAS * max_bid, f"{cid}: past the issue's bound (one max bid per replica)"
        assert spend <= budget, f"{cid} spent {spend} of {budget}"
        day = db.execute("SELECT MAX(spend_micros) FROM daily_stats WHERE campaign_id = ?", (cid,)).fetchone()[0]
        assert daily is None or day <= daily, f"{cid} spent {day} in a day of {daily}"
    capped = db.execute(
        "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM impressions WHERE campaign_id = 'capped'"
        " GROUP BY user_id, day) t"
    ).fetchone()[0]
    assert capped is None or capped <= 2, f"a user saw the capped campaign {capped} times in a day"


def metric(text: str, route: str) -> int:
    """The count of 200s on ``route`` in a Prometheus exposition."""
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("roost_http_requests_total{")
            and f'route="{route}"' in line
            and 'status="200"' in line
            and 'method="POST"' in line
        )
    )


def test_clients_on_three_replicas_keep_the_money_right(cluster):
    url, procs = cluster
    load = Load([base for _, base in procs], "first-u")
    run_clients(load, clients=6, steps=8)
    assert load.failures == 0 and len(load.ok_serves) == REPLICAS  # every replica served
    check_money(url, load)
    spend = dict(AdStore(url)._conn().execute("SELECT id, spend_micros FROM campaigns").fetchall())
    assert spend["small"] == 2_000_000  # clicked past its budget: spent to the micro, not beyond
    # ("daily" is paced by the time of day, so how much of its daily budget it may spend here depends on the clock)
    for i, (_, base) in enumerate(procs):
        assert metric(httpx.get(base + "/metrics").text, "/ads/serve") == load.ok_serves[i]  # /metrics per replica


def test_a_replica_killed_mid_load_loses_no_acknowledged_click(cluster):
    url, procs = cluster
    load = Load([base for _, base in procs], "second-u")
    killer_done = threading.Event()

    def kill_when_busy() -> None:
        deadline = time.monotonic() + 60
        while len(load.acked) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        procs[0][0].send_signal(signal.SIGKILL)  # in the middle of the load: no goodbye
        with load.lock:
            load.alive.discard(0)  # the balancer notices and stops sending it traffic
        killer_done.set()

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    run_clients(load, clients=5, steps=10)
    killer.join()
    assert killer_done.is_set() and procs[0][0].wait(timeout=10) == -signal.SIGKILL
    run_clients(load, clients=2, steps=4)  # more traffic on the survivors only
    served_by_dead = [(imp, q) for imp, q in load.tokens if load.served[imp] == 0]
    with httpx.Client(follow_redirects=False) as http:  # its ads' click links still work on the others
        for imp, query in served_by_dead[:3]:  # (a first click, or a replay charged nothing)
            load.click(http, imp, query, 1)
    assert load.after_kill, "no click on the dead replica's ads was made on a survivor"
    check_money(url, load)
    for _, base in procs[1:]:
        assert httpx.get(base + "/ready").status_code == 200


def test_a_campaign_created_through_one_replica_is_served_by_the_others(cluster):
    _, procs = cluster
    alive = [base for proc, base in procs if proc.poll() is None]
    body = {
        "advertiser": "Acme",
        "name": "Boots",
        "budget": 5,
        "bid_type": "cpc",
        "bid": 0.5,
        "targeting": {"keywords": ["boots"]},
        "creatives": [{"text": "boots boots", "landing_url": "https://boots.example/"}],
    }
    r = httpx.post(alive[0] + "/admin/campaigns", json=body, headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 201, r.text
    cid, deadline = r.json()["id"], time.monotonic() + 30
    for base in alive[1:]:  # each replica polls the database every 2 s for campaigns edited elsewhere
        while cid not in [
            ad["campaign_id"] for ad in httpx.post(base + "/ads/serve", json={"query": "boots"}).json()["ads"]
        ]:
            assert time.monotonic() < deadline, f"{base} never served the campaign created on {alive[0]}"
            time.sleep(0.2)


def test_sigterm_finishes_a_streamed_answer_in_flight_then_exits(cluster):
    proc, base = cluster[1][-1]
    try:
        body = {"model": "roost", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=60) as r:
            lines = r.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))  # the first chunk is here
            proc.send_signal(signal.SIGTERM)
            port = urlsplit(base).port
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # the replica stops listening (the balancer's probes fail) ...
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    time.sleep(0.05)
                except OSError:
                    break
            else:
                raise AssertionError("the replica kept accepting connections after SIGTERM")
            assert proc.poll() is None  # ... but is still here, finishing the stream
            SlowEngine.release.set()
            rest = [line for line in lines if line.startswith("data: ")]
        assert len(rest) == 4 and rest[-1] == "data: [DONE]"  # the whole answer
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    finally:
        SlowEngine.release.set()


def test_a_replica_without_its_database_is_alive_not_ready_and_answers_503(tmp_path):
    require_postgres()
    with temporary_postgres() as pg:
        url = pg.create_database("gone")
        AdStore(url, migrate=True).add_campaigns([spec("x", "shoes")])
        with live_server(tmp_path / "ws", ads_db=url) as (base, _):
            assert httpx.get(base + "/ready").json()["checks"]["ads"] == "ok"
            assert httpx.post(base + "/ads/serve", json={"query": "shoes"}).json()["ads"]
            pg.stop()  # the database goes away under a running replica
            ready = httpx.get(base + "/ready")
            assert ready.status_code == 503 and "ads database" in ready.json()["error"]["message"], ready.text
            r = httpx.post(base + "/ads/serve", json={"query": "shoes"})
            assert r.status_code == 503 and r.json()["error"]["code"] == "ads_db_unavailable", r.text
            assert r.headers["retry-after"] == "1"
            assert httpx.get(base + "/health").status_code == 200
    down = f"postgresql://roost@127.0.0.1:{free_port()}/nothing"  # and one that was never there at start
    with live_server(tmp_path / "ws2", ads_db=down) as (base, _):
        ready = httpx.get(base + "/ready")
        assert ready.status_code == 503 and "ads did not load" in ready.json()["error"]["message"], ready.text
        assert httpx.get(base + "/health").status_code == 200
