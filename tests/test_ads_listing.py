"""Money a marketer can read: the campaign listing (spend, remaining, pacing, delivery), its paging and
sorting in SQLite, and ``GET /admin/campaigns`` / ``GET /ui/campaigns`` over a real server."""

import sqlite3

import httpx
import pytest
from test_ads_server import ADMIN, campaign
from test_ads_service import NOON, spec
from test_engine_fixtures import live_server

from roost.ads.listing import SORTS, ListQuery, campaign_money, list_campaigns
from roost.ads.pacing import DAY_S, pacing_state
from roost.ads.store import AdStore, Impression


def store_with(tmp_path, specs) -> AdStore:
    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    store.add_campaigns(specs, now=NOON - DAY_S)
    return store


def show(store: AdStore, cid: str, n: int, pctr: float, clicks: int = 0, ts: float = NOON) -> None:
    imps = store.record_impressions([Impression(cid, 1, None, 0, 400_000, pctr, {}, ts) for _ in range(n)])
    for imp in imps[:clicks]:
        store.record_click(imp.id, ts)


def test_the_listing_reads_money_pacing_and_delivery(tmp_path):
    specs = [
        spec("clicked", "a", bid=0.4, budget=10),
        spec("paused", "b", status="paused"),
        spec("spent", "c", bid=0.4, budget=0.4),
        spec("paced", "d", bid=0.5, budget=50, daily_budget=2),
        spec("cpm", "e", bid_type="cpm", bid=2),
    ]
    store = store_with(tmp_path, specs)
    show(store, "clicked", 4, pctr=0.25, clicks=1)
    show(store, "spent", 1, pctr=0.1, clicks=1)
    show(store, "paced", 5, pctr=0.05, clicks=5)  # 5 x $0.40: the $2 day spent by noon
    rows = {r["id"]: r for r in list_campaigns(store, ListQuery(limit=10), now=NOON)["data"]}
    c = rows["clicked"]
    assert (c["spend"], c["remaining"], c["impressions"], c["clicks"]) == (0.4, 9.6, 4, 1)
    assert c["ctr"] == 0.25 and c["predicted_ctr"] == pytest.approx(0.25) and c["price_unit"] == "per click"
    assert c["pacing"] == {"state": "unpaced", "participation": 1.0}
    assert rows["paused"]["pacing"]["state"] == "paused" and rows["paused"]["predicted_ctr"] is None
    assert rows["spent"]["pacing"]["state"] == "budget_spent" and rows["spent"]["remaining"] == 0
    assert rows["paced"]["pacing"]["state"] == "daily_budget_spent" and rows["paced"]["spend_today"] == 2
    assert rows["cpm"]["price_unit"] == "per 1,000 impressions"
    assert campaign_money(store, "clicked", now=NOON) == c and campaign_money(store, "nope") is None


def test_pacing_states_follow_the_day():
    half = 1_000_000
    assert pacing_state("active", 0, 10 * half, half, 2 * half, NOON)["state"] == "on_pace"  # half spent at noon
    ahead = pacing_state("active", 0, 10 * half, int(1.08 * half), 2 * half, NOON)
    assert ahead["state"] == "ahead" and 0 < ahead["participation"] < 1


def test_pages_cover_every_campaign_once_in_each_order(tmp_path):
    store = store_with(tmp_path, [spec(f"c{i:02d}", "x", bid=f"0.{10 + i}", budget=5 + i % 7) for i in range(23)])
    for i in range(0, 23, 3):
        show(store, f"c{i:02d}", i + 1, pctr=0.1, clicks=i % 4)
    for sort in SORTS:
        for order in ("asc", "desc"):
            seen, offset = [], 0
            while True:
                page = list_campaigns(store, ListQuery(sort, order, limit=5, offset=offset), now=NOON)
                assert page["total"] == 23
                seen += page["data"]
                offset += 5
                if not page["has_more"]:
                    break
            assert sorted(r["id"] for r in seen) == [f"c{i:02d}" for i in range(23)], (sort, order)
            field = {"created": None, "name": "name", "advertiser": None}.get(sort, sort)
            if field and sort != "predicted_ctr":
                values = [r[field] for r in seen]
                assert values == sorted(values, reverse=order == "desc"), (sort, order)
    with pytest.raises(ValueError, match="sort must be one of"):
        ListQuery(sort="id; DROP TABLE campaigns")


def test_an_older_ads_db_gets_its_predicted_clicks_filled_in(tmp_path):
    store = store_with(tmp_path, [spec("a", "x")])
    show(store, "a", 4, pctr=0.2)
    store.close()
    db = sqlite3.connect(tmp_path / "ads.db")
    db.execute("ALTER TABLE daily_stats DROP COLUMN pctr_sum")  # as the file was before the column existed,
    db.execute("DROP TABLE schema_migrations")  # and before migrations were versioned
    db.commit()
    db.close()
    reopened = AdStore(tmp_path / "ads.db")
    assert campaign_money(reopened, "a", now=NOON)["predicted_ctr"] == pytest.approx(0.2)


def test_an_ads_db_at_version_2_gets_expected_clicks_as_many_as_its_clicks(tmp_path):
    """Days logged before expected clicks were kept carry no evidence of a campaign's propensity (ratio 1)."""
    store = store_with(tmp_path, [spec("a", "x")])
    show(store, "a", 5, pctr=0.2, clicks=2)
    store.close()
    db = sqlite3.connect(tmp_path / "ads.db")
    db.execute("ALTER TABLE daily_stats DROP COLUMN expected_clicks")  # as a file at version 2 was
    db.execute("DELETE FROM schema_migrations WHERE version = 3")
    db.commit()
    db.close()
    assert AdStore(tmp_path / "ads.db").click_counts() == {"a": (5, 2, 2.0)}


def test_admin_and_dashboard_listings_over_http(tmp_path):
    with live_server(tmp_path / "ws", admin_key="admin-secret") as (url, _), httpx.Client(base_url=url) as http:
        ids = [
            http.post("/admin/campaigns", json=campaign(f"Shoes {i}", budget=5 + i), headers=ADMIN).json()["id"]
            for i in range(12)
        ]
        [ad] = http.post("/ads/serve", json={"query": "running shoes"}).json()["ads"]
        assert ad["price_unit"] == "per click" and ad["bid_type"] == "cpc"
        assert http.get("/admin/campaigns").status_code == 401
        page = http.get("/admin/campaigns", params={"sort": "budget", "order": "asc", "limit": 5}, headers=ADMIN).json()
        assert page["total"] == 12 and page["has_more"] and [r["id"] for r in page["data"]] == ids[:5]
        last = http.get(
            "/admin/campaigns", params={"sort": "budget", "order": "asc", "limit": 5, "offset": 10}, headers=ADMIN
        ).json()
        assert [r["id"] for r in last["data"]] == ids[10:] and not last["has_more"]
        for params, param in (({"sort": "nope"}, "sort"), ({"limit": 0}, "limit"), ({"order": "up"}, "order")):
            r = http.get("/admin/campaigns", params=params, headers=ADMIN)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
        dash = http.get("/ui/campaigns", params={"sort": "impressions"}).json()  # read-only: no admin key
        assert dash["data"][0]["id"] == ad["campaign_id"] and dash["data"][0]["impressions"] == 1
        view = http.get(f"/admin/campaigns/{ids[0]}", headers=ADMIN).json()
        assert view["remaining"] == 5 and view["pacing"]["state"] == "unpaced" and view["creatives"]
