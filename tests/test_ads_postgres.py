"""The ads store on a real PostgreSQL server: migrations, the money invariants, and two stores as two replicas.

Each test gets a fresh database on a server that test_pg_fixtures starts with
initdb/pg_ctl in a temporary folder. Two :class:`AdStore` objects on one URL
have their own connections, exactly as two replica processes would, so the row
locks that keep budgets, clicks and frequency caps right are exercised for real.
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ads_money import NOON, SECRET, Traffic, campaigns, check_money, ops
from test_pg_fixtures import closes_pools, fresh_database, pg_server, pg_template, pg_url  # noqa: F401 (fixtures)

from roost.ads.campaign import CampaignPatch, CampaignSpec
from roost.ads.clicks import ClickSigner
from roost.ads.db import open_backend
from roost.ads.listing import ListQuery, campaign_money, list_campaigns
from roost.ads.migrations import SchemaBehind, current_version, head
from roost.ads.money import MoneyError
from roost.ads.pacing import DAY_S
from roost.ads.service import AdRequest, AdsConfig, AdService
from roost.ads.store import AdStore, Impression
from roost.cli import main
from roost.server.ui import ads_summary

pytestmark = pytest.mark.usefixtures("closes_pools")  # no pool left to the garbage collector


def spec(cid: str, budget: float = 1.0, bid: float = 0.3, **over) -> CampaignSpec:
    return CampaignSpec.model_validate(
        {
            "id": cid,
            "advertiser": over.pop("advertiser", "Acme"),
            "name": over.pop("name", cid),
            "budget": budget,
            "bid_type": "cpc",
            "bid": bid,
            "targeting": {"keywords": ["shoes"]},
            "creatives": [{"text": f"{cid} shoes", "landing_url": f"https://{cid}.example/"}],
            **over,
        }
    )


def impression(store: AdStore, cid: str, user: str | None = None, price: int = 300_000, cap: int | None = None):
    creative = store.creative_rows([cid])[0]["id"]
    return Impression(cid, creative, user, 0, price, 0.05, {"similarity": 0.5}, NOON, frequency_cap=cap)


def run_threads(n: int, target) -> None:
    threads = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_migrations_are_versioned_run_by_a_command_and_required(pg_server, capsys, tmp_path):
    url = fresh_database(pg_server)
    with pytest.raises(SchemaBehind, match="roost ads migrate"):
        AdStore(url)  # a replica never migrates a shared database by itself
    campaigns = tmp_path / "ads.json"
    campaigns.write_text(json.dumps({"campaigns": [json.loads(spec("x").model_dump_json())]}))
    assert main(["ads", "load", str(campaigns), "--ads-db", url, "--workspace", str(tmp_path / "ws")]) == 2
    assert "roost ads migrate" in capsys.readouterr().err  # a clear error, not a traceback
    errors = [None] * 4

    def migrate(k: int) -> None:  # several migrators at once: the advisory lock lets one apply each version
        errors[k] = main(["ads", "migrate", "--ads-db", url])

    run_threads(4, migrate)
    assert errors == [0, 0, 0, 0]
    out = capsys.readouterr().out
    assert out.count("applied migration 1") == 1 and "already at version" in out
    backend = open_backend(url)
    assert current_version(backend) == head()
    assert backend.conn().execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == head()
    assert main(["ads", "load", str(campaigns), "--ads-db", url, "--workspace", str(tmp_path / "ws")]) == 0
    assert [r["id"] for r in AdStore(url).campaign_rows()] == ["x"]  # now it opens, and the campaigns are there
    assert not (tmp_path / "ws" / "ads.db").exists()
    bad = url.replace("postgresql://roost@", "postgresql://nobody@")
    assert main(["ads", "migrate", "--ads-db", bad]) == 2
    assert "nobody" in capsys.readouterr().err


def test_durability_sets_synchronous_commit(pg_url):
    """ROOST_ADS_DURABILITY's choice reaches PostgreSQL: "process" commits survive the replica, "power" the disk."""
    from roost.ads.setup import open_store
    from roost.workspace import Workspace

    for durability, want in (("process", "off"), ("power", "on")):
        store = open_store(Workspace("unused-ws"), durability=durability, ads_db=pg_url)
        with store.backend.transaction() as db:
            assert db.execute("SHOW synchronous_commit").fetchone()[0] == want, durability
        store.close()
    assert AdStore(pg_url).backend.synchronous_commit == "on"  # the class's own default is the safe one


def test_catalog_listing_reports_and_embeddings_read_the_same_on_postgres(pg_url):
    store = AdStore(pg_url)
    store.add_campaigns(
        [
            spec("b", name="beta", advertiser="Zed", budget=3000.0),  # budget past 2^31 micros
            spec("a", name="Alpha"),
            spec("c", name="charlie", frequency_cap=2),
        ]
    )
    with pytest.raises(ValueError, match="already in"):
        store.add_campaigns([spec("a")])
    assert [r["id"] for r in store.campaign_rows()] == ["b", "a", "c"]  # insertion order
    page = list_campaigns(store, ListQuery(sort="name", order="asc"), now=NOON)
    assert [r["id"] for r in page["data"]] == ["a", "b", "c"] and page["total"] == 3  # case-blind, as in SQLite
    [kept] = store.record_impressions([impression(store, "a", "u1")])
    click = store.record_click(kept.id, NOON)
    assert click.charged_micros == 300_000 and not click.duplicate
    money = campaign_money(store, "a", now=NOON)
    assert money["spend_micros"] == 300_000 and money["impressions"] == 1 and money["clicks"] == 1
    assert isinstance(money["ctr"], float) and money["ctr"] == 1.0 and money["predicted_ctr"] == pytest.approx(0.05)
    view = store.campaign_view("b")
    assert view["budget"] == 3000.0 and view["impressions"] == 0 and view["creatives"][0]["text"] == "b shoes"
    [row] = store.report(campaign_id="a")
    assert row["clicks"] == 1 and row["spend_micros"] == 300_000 and row["day"] == "2026-01-01"
    assert store.click_counts() == {"a": (1, 1, 0.0)}
    [event] = store.events()
    assert event["id"] == kept.id and event["clicked"]
    store.save_embeddings("s", [(1, b"\x00\x01"), (2, b"\xff")])
    store.save_embeddings("s", [(1, b"\x02")])
    assert store.cached_embeddings("s") == {1: b"\x02", 2: b"\xff"}
    with pytest.raises(MoneyError, match="budget"):
        store.update_campaign("a", CampaignPatch(budget=0.1))  # below what it spent
    store.update_campaign("a", CampaignPatch(status="paused"))
    assert store.record_impressions([impression(store, "a")]) == []  # paused: not shown
    summary = ads_summary(SimpleNamespace(store=store, config=AdsConfig()))  # the dashboard's totals
    assert (summary["campaigns"], summary["active"], summary["spend"], summary["clicks"]) == (3, 2, 0.3, 1)
    assert summary["budget"] == pytest.approx(3002.0)


def test_two_replicas_charge_each_click_once_and_never_past_the_budget(pg_url):
    replicas = [AdStore(pg_url), AdStore(pg_url)]
    replicas[0].add_campaigns([spec("shoes", budget=1.0, bid=0.3, daily_budget=0.9)])
    shown = [replicas[k % 2].record_impressions([impression(replicas[0], "shoes", f"u{k}")])[0].id for k in range(40)]
    results: list = []
    lock = threading.Lock()

    def click_all(k: int) -> None:  # 8 clients, half on each replica, every impression clicked by two of them
        store = replicas[k % 2]
        for imp in shown[k % 4 :: 4]:
            c = store.record_click(imp, NOON)
            with lock:
                results.append((imp, c.charged_micros, c.duplicate))

    run_threads(8, click_all)
    assert len(results) == 80
    firsts = [r for r in results if not r[2]]
    assert sorted(r[0] for r in firsts) == sorted(shown)  # each click recorded exactly once, whoever got it
    assert all(charged == 0 for _, charged, dup in results if dup)
    db = replicas[1]._conn()
    spend = db.execute("SELECT spend_micros FROM campaigns WHERE id = 'shoes'").fetchone()[0]
    charged = db.execute("SELECT SUM(charged_micros) FROM clicks").fetchone()[0]
    day = db.execute("SELECT spend_micros, clicks FROM daily_stats WHERE campaign_id = 'shoes'").fetchone()
    assert spend == charged == sum(r[1] for r in firsts) == 900_000  # the daily budget, to the micro
    assert tuple(day) == (900_000, 40)


def test_frequency_cap_holds_across_replicas(pg_url):
    replicas = [AdStore(pg_url), AdStore(pg_url)]
    replicas[0].add_campaigns([spec("capped", budget=100.0)])
    kept: list = []

    def show(k: int) -> None:
        for _ in range(5):
            kept.extend(replicas[k % 2].record_impressions([impression(replicas[0], "capped", "same-user", cap=2)]))

    run_threads(6, show)
    assert len(kept) == 2  # 30 attempts from two replicas at once, and the user saw it twice
    assert replicas[1].user_impressions("same-user", "2026-01-01") == {"capped": 2}


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(specs=campaigns(), program=st.lists(ops, min_size=10, max_size=40))
def test_money_invariants_under_random_concurrent_traffic_on_postgres(pg_server, pg_template, specs, program):
    """test_ads_money's property on PostgreSQL: four threads, two of them on a second store (replica)."""
    url = fresh_database(pg_server, pg_template)
    stores = [AdStore(url), AdStore(url)]
    stores[0].add_campaigns(specs, now=NOON - DAY_S)
    config = AdsConfig(retrieval="keyword", reserve_cpm_micros=0)
    services = [AdService(s, ClickSigner(SECRET), config=config, clock=lambda: NOON, seed=0) for s in stores]
    traffic = [Traffic(service, len(specs)) for service in services]
    run_threads(4, lambda k: traffic[k % 2].run(program[k::4]))
    check_money(stores[0], traffic[0].clicked | traffic[1].clicked)
    for s in stores:
        s.close()


def test_pacing_on_one_replica_sees_what_another_spent_today(pg_url):
    early = NOON - DAY_S / 2 + 1800  # 00:30 UTC: 2% of the day gone
    replicas = [AdStore(pg_url), AdStore(pg_url)]
    replicas[0].add_campaigns([spec("paced", budget=100.0, bid=0.5, daily_budget=10.0)])
    service = AdService(
        replicas[1],
        ClickSigner(SECRET),
        config=AdsConfig(retrieval="keyword", reserve_cpm_micros=0, live_state_max_age_s=0.5),
        clock=lambda: early,
        seed=0,
    )
    request = AdRequest(query="new shoes")
    assert [ad.campaign_id for ad in service.serve(request)] == ["paced"]  # on schedule: it enters every auction
    for k in range(6):  # the other replica spends 3.00 of today's 10.00: 30% of the budget at 2% of the day
        [imp] = replicas[0].record_impressions([impression(replicas[0], "paced", f"v{k}", price=500_000)])
        assert replicas[0].record_click(imp.id, early).charged_micros == 500_000
    time.sleep(0.6)  # another replica's spend reaches this one's live-state cache within live_state_max_age_s
    assert all(service.serve(request) == [] for _ in range(20))  # far ahead of schedule: throttled to nothing here


def test_a_campaign_created_on_one_replica_is_served_by_another(pg_url):
    replicas = [AdStore(pg_url), AdStore(pg_url)]
    replicas[0].add_campaigns([spec("old", name="old")])
    service = AdService(
        replicas[1],
        ClickSigner(SECRET),
        config=AdsConfig(retrieval="keyword", reserve_cpm_micros=0),
        clock=lambda: NOON,
        seed=0,
    )
    service.follow_catalog(every_s=3600)  # polled by hand below
    try:
        assert service._sync.poll_once() == []
        boots = spec("boots", name="boots").model_copy(
            update={"targeting": spec("x").targeting.model_copy(update={"keywords": ["boots"]})}
        )
        replicas[0].add_campaigns([boots])  # through the other replica's store
        assert service.serve(AdRequest(query="boots")) == []  # not in this replica's catalog yet
        assert service._sync.poll_once() == ["boots"]
        assert [ad.campaign_id for ad in service.serve(AdRequest(query="boots"))] == ["boots"]
        replicas[0].update_campaign("boots", CampaignPatch(bid=0.4))
        assert service._sync.poll_once() == ["boots"] and service.catalog.campaigns["boots"].bid_micros == 400_000
    finally:
        service.close()
