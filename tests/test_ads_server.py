"""The ads surface over real HTTP: admin API, serving, signed clicks, money safety, durability (of live posts too)."""

import concurrent.futures
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from test_engine_fixtures import live_server
from test_search_fixtures import make_posts, write_corpus

from roost.cli import main
from roost.search.engine import SearchIndex, SearchRequest
from roost.server.limits import Limits
from roost.workspace import Workspace

ADMIN = {"Authorization": "Bearer admin-secret"}


def campaign(name="Shoes", keywords=("running shoes",), **over) -> dict:
    body = {
        "advertiser": "Acme",
        "name": name,
        "budget": 5,
        "bid_type": "cpc",
        "bid": 0.5,
        "targeting": {"keywords": list(keywords)},
        "creatives": [
            {"text": f"{name}: fast running shoes for your marathon", "landing_url": "https://acme.example/x"}
        ],
    }
    body.update(over)
    return body


@pytest.fixture
def server(tmp_path):
    with live_server(tmp_path / "workspace", admin_key="admin-secret") as (url, app):
        yield url, app


def test_admin_campaign_lifecycle_serve_click_and_report(server):
    url, _ = server
    with httpx.Client(base_url=url, follow_redirects=False) as http:
        assert http.post("/admin/campaigns", json=campaign()).status_code == 401  # no admin key
        r = http.post("/admin/campaigns", json=campaign(), headers=ADMIN)
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        assert r.json()["budget"] == 5 and r.json()["spend"] == 0

        r = http.post("/ads/serve", json={"query": "best running shoes for a marathon", "user_id": "u1", "slots": 2})
        assert r.status_code == 200, r.text
        [ad] = r.json()["ads"]
        assert ad["campaign_id"] == cid and ad["landing_url"] == "https://acme.example/x" and 0 < ad["price"] <= 0.5

        path = urlsplit(ad["click_url"])
        assert path.path == "/ads/click"
        click = http.get(ad["click_url"])
        assert click.status_code in (302, 307) and click.headers["location"] == "https://acme.example/x"
        assert http.get(ad["click_url"]).status_code in (302, 307)  # a replay still redirects ...
        view = http.get(f"/admin/campaigns/{cid}", headers=ADMIN).json()
        assert view["clicks"] == 1 and view["impressions"] == 1
        assert view["spend"] == pytest.approx(ad["price"])  # ... but is charged once

        token = parse_qs(path.query)["t"][0]
        forged = http.get("/ads/click", params={"t": token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")})
        assert forged.status_code == 403 and forged.json()["error"]["param"] == "t"
        assert http.get(f"/admin/campaigns/{cid}", headers=ADMIN).json()["spend"] == view["spend"]

        r = http.patch(f"/admin/campaigns/{cid}", json={"status": "paused"}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["status"] == "paused"
        assert http.post("/ads/serve", json={"query": "running shoes"}).json()["ads"] == []
        http.patch(
            f"/admin/campaigns/{cid}", json={"status": "active", "targeting": {"keywords": ["tennis"]}}, headers=ADMIN
        )
        assert http.post("/ads/serve", json={"query": "tennis rackets"}).json()["ads"][0]["campaign_id"] == cid

        report = http.get("/admin/reports", headers=ADMIN).json()["data"]
        assert [(row["campaign_id"], row["impressions"], row["clicks"]) for row in report] == [(cid, 2, 1)]
        assert report[0]["ctr"] == 0.5 and report[0]["spend"] == pytest.approx(ad["price"])


@pytest.mark.parametrize(
    "method, path, body, status, param",
    [
        ("post", "/admin/campaigns", campaign(bid_type="cpa"), 400, "bid_type"),
        (
            "post",
            "/admin/campaigns",
            campaign(creatives=[{"text": "x", "landing_url": "javascript:alert(1)"}]),
            400,
            "creatives.0.landing_url",
        ),
        ("patch", "/admin/campaigns/nope", {"status": "paused"}, 404, "campaign_id"),
        ("patch", "/admin/campaigns/nope", {"status": "stopped"}, 400, "status"),
        ("get", "/admin/reports?start=yesterday", None, 400, "start"),
        ("post", "/ads/serve", {"query": "x", "slots": 0}, 400, "slots"),
        ("post", "/ads/serve", {"slots": 1}, 400, "query"),
        ("get", "/ads/click", None, 400, "t"),
    ],
)
def test_bad_requests_get_openai_style_4xx(server, method, path, body, status, param):
    url, _ = server
    kwargs = {"json": body} if body is not None else {}
    r = getattr(httpx, method)(url + path, headers=ADMIN, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param and r.json()["error"]["message"]


def test_hammering_a_small_budget_never_overspends(tmp_path):
    """16 clients serve and click as fast as they can against a budget of a few clicks.

    They all come from 127.0.0.1, one 'client' to the per-client rate limit, so it is off here.
    """
    with live_server(tmp_path / "workspace", admin_key="admin-secret", limits=Limits(rate=0)) as (url, _):
        _hammer(url)


def _hammer(url: str) -> None:
    budget, max_bid = 2.0, 0.5
    with httpx.Client(base_url=url, headers=ADMIN) as http:
        cid = http.post("/admin/campaigns", json=campaign(budget=budget, bid=max_bid, max_bid=max_bid)).json()["id"]
        http.post("/admin/campaigns", json=campaign(name="Rival", bid=0.45))  # a runner-up keeps prices high

    def client(k: int) -> int:
        clicks = 0
        with httpx.Client(base_url=url) as http:
            for i in range(12):
                ads = http.post("/ads/serve", json={"query": "running shoes", "user_id": f"u{k}-{i}"}).json()["ads"]
                for ad in ads:
                    assert http.get(ad["click_url"]).status_code == 302
                    http.get(ad["click_url"])  # replay
                    clicks += 1
        return clicks

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        total_clicks = sum(pool.map(client, range(16)))
    with httpx.Client(base_url=url, headers=ADMIN) as http:
        view = http.get(f"/admin/campaigns/{cid}").json()
    assert total_clicks > 4  # the budget really was under pressure
    assert view["spend"] == budget, view["spend"]  # spent to the micro: the last click paid the remainder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_acknowledged_ad_events_and_posts_survive_sigkill(tmp_path):
    ws = tmp_path / "workspace"
    write_corpus(Workspace(ws), make_posts(30))
    assert main(["index", "--workspace", str(ws), "--no-vectors"]) == 0
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
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
            "admin-secret",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
            time.sleep(0.1)
        with httpx.Client(base_url=url) as http:
            for i in range(3):
                http.post("/admin/campaigns", json=campaign(name=f"C{i}"), headers=ADMIN).raise_for_status()
            served, clicked = [], []
            for i in range(20):
                ads = http.post("/ads/serve", json={"query": "running shoes", "slots": 3}).json()["ads"]
                served += [ad["impression_id"] for ad in ads]
                if i % 2 == 0:
                    assert http.get(ads[0]["click_url"]).status_code == 302
                    clicked.append(ads[0]["impression_id"])
            posts = [{"id": f"zep{i}", "text": f"zeppelin number {i} over the harbour"} for i in range(5)]
            assert http.post("/admin/posts", json={"posts": posts}, headers=ADMIN).json()["added"] == [
                p["id"] for p in posts
            ]
            assert http.delete("/admin/posts/zep0", headers=ADMIN).status_code == 200
        proc.send_signal(signal.SIGKILL)  # the instant after the last acknowledgement
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    db = sqlite3.connect(ws / "ads.db")
    assert {r[0] for r in db.execute("SELECT id FROM impressions")} == set(served)
    assert {r[0] for r in db.execute("SELECT impression_id FROM clicks")} == set(clicked)
    spend = db.execute("SELECT SUM(spend_micros) FROM campaigns").fetchone()[0]
    assert spend == db.execute("SELECT SUM(charged_micros) FROM clicks").fetchone()[0] > 0
    index = SearchIndex(Workspace(ws).index)
    try:
        found = [h.post.id for h in index.search(SearchRequest(q="zeppelin harbour", k=20, mode="lexical"))]
    finally:
        index.close()
    assert sorted(found) == ["zep1", "zep2", "zep3", "zep4"]  # the adds and the delete, all kept
