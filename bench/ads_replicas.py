"""Ad decisions/s over HTTP with 1, 2 and 3 ``roost serve`` replicas on one PostgreSQL, and 1 on SQLite, same run.

Each replica is a separate ``roost serve`` process on one workspace (no
language model: the hashing embedder, as a replica that only serves ads runs).
The campaigns come from bench/ads.py's generator (the sample network's topic
banks); the creative index is built once and saved in the workspace, so the
replicas load it instead of building it. Clients are threads posting
``/ads/serve`` (2 slots, a query with a random number so no cache helps),
spread round-robin over the replicas as a load balancer would. The decision's
latency is the client's: request sent to answer read, on this machine.

PostgreSQL runs from a temporary folder (roost.ads.pgtemp) with fsync on and
``synchronous_commit=on``: each acknowledged impression is on disk. The SQLite
replica uses the server's default durability (WAL, synchronous=NORMAL: survives
a SIGKILL of the server, not a power cut).

    .venv/bin/python bench/ads_replicas.py --campaigns 10000 --requests 2000 --clients 6
    .venv/bin/python bench/ads_replicas.py --store-campaigns 100000
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from ads import make_campaigns, make_requests  # noqa: E402  (bench/ads.py's generators)

from roost.ads.clicks import ClickSigner, load_or_create_secret  # noqa: E402
from roost.ads.embedder import HashingEmbedder  # noqa: E402
from roost.ads.pgtemp import PgSettings, free_port, temporary_postgres  # noqa: E402
from roost.ads.service import AdService  # noqa: E402
from roost.ads.setup import ads_dir  # noqa: E402
from roost.ads.store import AdStore, Impression  # noqa: E402
from roost.workspace import Workspace  # noqa: E402


def start_replica(ws: Path, ads_db: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "roost",
        "serve",
        "--workspace",
        str(ws),
        "--port",
        str(port),
        "--rate-limit",
        "0",
        "--max-concurrency",
        "1000",
    ] + (["--ads-db", ads_db] if ads_db else [])
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"replica exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("replica did not become ready in 300 s")


def drive(urls: list[str], bodies: list[dict], clients: int) -> tuple[float, np.ndarray, float, int]:
    """(decisions/s, latencies in ms, ads per decision, errors) for ``bodies`` sent by ``clients`` threads."""
    lat: list[float] = []
    ads = [0, 0]
    lock = threading.Lock()

    def client(k: int) -> None:
        mine, n, bad = [], 0, 0
        with httpx.Client(timeout=60) as http:
            for i, body in enumerate(bodies[k::clients]):
                url = urls[(k + i) % len(urls)]  # round-robin, as a balancer spreads requests
                t = time.perf_counter()
                r = http.post(url + "/ads/serve", json=body)
                mine.append((time.perf_counter() - t) * 1000)
                if r.status_code == 200:
                    n += len(r.json()["ads"])
                else:
                    bad += 1
        with lock:
            lat.extend(mine)
            ads[0] += n
            ads[1] += bad

    start = time.perf_counter()
    pool = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return len(bodies) / (time.perf_counter() - start), np.array(lat), ads[0] / len(bodies), ads[1]


def bodies_for(n: int, rng: random.Random) -> list[dict]:
    return [{"query": r.query, "user_id": r.user_id, "slots": r.slots} for r in make_requests(n, rng)]


def store_latency(store: AdStore, specs: list, decisions: int, rng: random.Random) -> tuple[float, float, float]:
    """(p50, p99, mean) ms of one decision's database work, as AdService.serve does it (one thread).

    A user's impressions today (frequency caps), the live state of 300 candidate campaigns (budget, spend, today's
    spend, status) and the commit of 2 impressions under the campaigns' locks: the part of a decision that moves
    from SQLite to PostgreSQL. The rest (embedding, ANN, auction) is the same code either way (bench/ads.py).
    """
    ids = [s.id for s in specs]
    creatives = {r["campaign_id"]: r["id"] for r in store.creative_rows()}
    now = time.time()
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    lat = []
    for k in range(decisions + 50):
        user = f"u{rng.randrange(10_000)}"
        t = time.perf_counter()
        store.user_impressions(user, day)
        cands = rng.sample(ids, 300)
        states = store.live_states(cands, day)
        won = [c for c in cands if states[c].has_budget()][:2]
        store.record_impressions(
            [Impression(c, creatives[c], user, i, 100_000, 0.02, {}, now, frequency_cap=3) for i, c in enumerate(won)]
        )
        if k >= 50:  # the first 50 warm the caches and prepared statements
            lat.append((time.perf_counter() - t) * 1000)
    a = np.array(lat)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.mean())


def store_table(n: int, decisions: int) -> None:
    rng = random.Random(1)
    specs = make_campaigns(n, rng)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="roost-bench-store-") as tmp,
        temporary_postgres(PgSettings(fsync=True)) as pg,
    ):
        relaxed = pg.create_database("relaxed")  # commits acknowledged before their WAL is on disk
        with psycopg.connect(pg.url(), autocommit=True) as db:
            db.execute('ALTER DATABASE "relaxed" SET synchronous_commit = off')
        stores = {
            "sqlite (synchronous=NORMAL)": AdStore(Path(tmp) / "ads.db", synchronous="NORMAL"),
            "postgresql (synchronous_commit=on)": AdStore(pg.create_database("bench"), migrate=True),
            "postgresql (synchronous_commit=off)": AdStore(relaxed, migrate=True),
        }
        for name, store in stores.items():
            t = time.perf_counter()
            store.add_campaigns(specs)
            load_s = time.perf_counter() - t
            rows.append((name, n, load_s, *store_latency(store, specs, decisions, rng)))
            print(f"{name}: {rows[-1]}", flush=True)
    print(f"\n{n} campaigns: one decision's database work, {decisions} decisions, one thread")
    cols = ["ads db", "campaigns", "load s", "p50 ms", "p99 ms", "mean ms"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--campaigns", type=int, default=10_000)
    p.add_argument("--requests", type=int, default=1500, help="timed decisions per configuration")
    p.add_argument("--clients", type=int, default=6, help="concurrent HTTP clients")
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3], help="PostgreSQL replica counts")
    p.add_argument(
        "--store-campaigns",
        type=int,
        default=None,
        metavar="N",
        help="instead: time one decision's database work at N campaigns, SQLite vs PostgreSQL "
        "(no servers: at 100k, replicas would take minutes each to start here)",
    )
    p.add_argument("--store-decisions", type=int, default=1000)
    args = p.parse_args()
    if args.store_campaigns:
        return store_table(args.store_campaigns, args.store_decisions)
    rng = random.Random(0)
    specs = make_campaigns(args.campaigns, rng)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="roost-bench-replicas-") as tmp,
        temporary_postgres(PgSettings(fsync=True)) as pg,
    ):
        ws = Workspace(Path(tmp) / "workspace")
        sqlite = AdStore(ws.ads_db, synchronous="NORMAL")
        t = time.perf_counter()
        sqlite.add_campaigns(specs)
        print(f"loaded {len(specs)} campaigns into SQLite in {time.perf_counter() - t:.1f} s", flush=True)
        url = pg.create_database("bench")
        pg_store = AdStore(url, migrate=True)
        t = time.perf_counter()
        pg_store.add_campaigns(specs)
        print(f"loaded them into PostgreSQL in {time.perf_counter() - t:.1f} s", flush=True)
        # build and save the creative index once (same creative ids in both databases), as a deploy would
        embed = HashingEmbedder()
        t = time.perf_counter()
        for store in (sqlite, pg_store):  # the second loads the saved graph and fills PostgreSQL's vector cache
            AdService(
                store,
                ClickSigner(load_or_create_secret(ads_dir(ws) / "click_secret")),
                embed=embed,
                space=embed.space,
                index_path=ads_dir(ws) / f"creatives-{embed.space}.usearch",
            )
        print(f"built the creative index in {time.perf_counter() - t:.1f} s", flush=True)
        configs = [("sqlite", 1)] + [("postgresql", n) for n in args.replicas]
        for backend, n in configs:
            procs = []
            try:
                for _ in range(n):
                    procs.append(start_replica(ws.root, url if backend == "postgresql" else None))
                urls = [u for _, u in procs]
                drive(urls, bodies_for(100, rng), args.clients)  # warm up
                rate, lat, per, errors = drive(urls, bodies_for(args.requests, rng), args.clients)
                single = drive(urls[:1], bodies_for(min(500, args.requests), rng), 1)[1]
                rows.append(
                    (
                        backend,
                        n,
                        rate,
                        *(float(np.percentile(x, q)) for x in (lat, single) for q in (50, 99)),
                        per,
                        errors,
                    )
                )
                print(f"{backend} x{n}: {rate:.1f} decisions/s", flush=True)
            finally:
                for proc, _ in procs:
                    proc.send_signal(signal.SIGTERM)
                for proc, _ in procs:
                    proc.wait(timeout=60)
    print(
        f"\n{args.campaigns} campaigns; {args.requests} decisions per row from {args.clients} concurrent clients "
        f"(2 ads asked each); 'one client' rows: {min(500, args.requests)} decisions, one at a time, on one replica; "
        f"{os.cpu_count()} CPU cores shared by everything (PostgreSQL, replicas, clients)"
    )
    cols = [
        "ads db",
        "replicas",
        "decisions/s",
        "p50 ms",
        "p99 ms",
        "one client p50 ms",
        "one client p99 ms",
        "ads/decision",
        "errors",
    ]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
