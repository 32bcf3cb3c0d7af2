"""A page of ads, not one ad four times: distinct campaigns per response and per page, per-user frequency caps
that hold under concurrency and across server restarts (real SQLite, a real uvicorn for the restart)."""

import concurrent.futures

import httpx
import pytest
from test_ads_server import ADMIN, campaign
from test_ads_service import service, spec
from test_engine_fixtures import live_server

from roost.ads.service import AdRequest, AdsConfig, AdService


def served(svc: AdService, **req) -> list[str]:
    return [ad.campaign_id for ad in svc.serve(AdRequest(**req))]


def test_one_response_never_shows_a_campaign_twice(tmp_path):
    two_creatives = [
        {"text": "running shoes for trails", "landing_url": "https://a.example/"},
        {"text": "running shoes for roads", "landing_url": "https://a.example/"},
    ]
    specs = [spec(c, "running shoes", creatives=two_creatives) for c in ("a", "b", "c")]
    svc = service(tmp_path, specs, config=AdsConfig(fill=True, default_frequency_cap=None))
    ids = served(svc, query="running shoes", slots=10)
    assert sorted(ids) == ["a", "b", "c"]


def test_a_timeline_page_excludes_what_it_already_shows(tmp_path):
    svc = service(tmp_path, [spec("a", "running shoes", bid=1.0), spec("b", "running shoes", bid=0.5)])
    assert served(svc, query="running shoes") == ["a"]
    assert served(svc, query="running shoes", exclude_campaign_ids=["a"]) == ["b"]
    assert served(svc, query="running shoes", exclude_campaign_ids=["a", "b"]) == []


def test_the_default_frequency_cap_applies_to_campaigns_without_their_own(tmp_path):
    svc = service(tmp_path, [spec("plain", "running shoes"), spec("own", "running shoes", frequency_cap=5)])
    assert AdsConfig().default_frequency_cap == 3  # the documented default
    per_campaign = {"plain": 0, "own": 0}
    for _ in range(8):
        for cid in served(svc, query="running shoes", user_id="u1", slots=2):
            per_campaign[cid] += 1
    assert per_campaign == {"plain": 3, "own": 5}
    assert sorted(served(svc, query="running shoes", user_id="u2", slots=2)) == ["own", "plain"]  # per user
    assert len(served(svc, query="running shoes", slots=2)) == 2  # no user: nothing to count against

    uncapped = service(tmp_path / "2", [spec("plain", "running shoes")], config=AdsConfig(default_frequency_cap=None))
    assert sum(len(served(uncapped, query="running shoes", user_id="u1")) for _ in range(6)) == 6
    with pytest.raises(ValueError, match="default_frequency_cap"):
        AdsConfig(default_frequency_cap=0)


def test_the_cap_holds_when_one_user_asks_many_times_at_once(tmp_path):
    svc = service(tmp_path, [spec("plain", "running shoes")])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        shown = sum(pool.map(lambda _: len(served(svc, query="running shoes", user_id="u1")), range(24)))
    assert shown == 3
    assert svc.store.user_impressions("u1", "2026-01-01") == {"plain": 3}


def test_caps_and_exclusions_over_http_hold_across_a_server_restart(tmp_path):
    ws = tmp_path / "workspace"
    ask = {"query": "best running shoes for a marathon", "user_id": "u1"}
    with live_server(ws, admin_key="admin-secret") as (url, _), httpx.Client(base_url=url) as http:
        cid = http.post("/admin/campaigns", json=campaign(), headers=ADMIN).json()["id"]
        other = http.post("/admin/campaigns", json=campaign("Boots", frequency_cap=1), headers=ADMIN).json()["id"]
        first = http.post("/ads/serve", json={**ask, "slots": 2}).json()["ads"]
        assert sorted(a["campaign_id"] for a in first) == sorted([cid, other])
        for _ in range(2):
            [ad] = http.post("/ads/serve", json=ask).json()["ads"]
            assert ad["campaign_id"] == cid  # Boots has its cap of 1
        r = http.post("/ads/serve", json={**ask, "exclude_campaign_ids": ["x" * 65]})
        assert r.status_code == 400 and r.json()["error"]["param"].startswith("exclude_campaign_ids"), r.text
    with live_server(ws, admin_key="admin-secret") as (url, _), httpx.Client(base_url=url) as http:
        assert http.post("/ads/serve", json=ask).json()["ads"] == []  # u1 saw both to their caps before the restart
        ads = http.post("/ads/serve", json={**ask, "user_id": "u2", "exclude_campaign_ids": [other]}).json()["ads"]
        assert [a["campaign_id"] for a in ads] == [cid]
