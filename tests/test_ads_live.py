"""The live-state cache (roost.ads.live): what a decision sees of status and spend, and when it reads again."""

from roost.ads.campaign import CampaignPatch, CampaignSpec
from roost.ads.clicks import ClickSigner
from roost.ads.live import LiveStates
from roost.ads.service import AdRequest, AdsConfig, AdService
from roost.ads.store import AdStore

NOON = 1_780_000_000.0 - 1_780_000_000.0 % 86_400 + 43_200
DAY = "2026-05-28"


def spec(cid: str, bid_type: str = "cpc", budget: float = 10.0) -> CampaignSpec:
    return CampaignSpec.model_validate(
        {
            "id": cid,
            "advertiser": "Acme",
            "name": cid,
            "budget": budget,
            "bid_type": bid_type,
            "bid": 0.5 if bid_type == "cpc" else 400.0,
            "targeting": {"keywords": ["shoes"]},
            "creatives": [{"text": f"{cid} shoes", "landing_url": f"https://acme.example/{cid}"}],
        }
    )


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_entries_are_read_once_then_again_when_old_forgotten_or_the_day_turns(tmp_path):
    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    store.add_campaigns([spec("a"), spec("b")])
    reads: list[list[str]] = []
    real = store.live_states
    store.live_states = lambda ids, day, db=None: reads.append(sorted(ids)) or real(ids, day, db)
    clock = Clock()
    live = LiveStates(store, max_age_s=1.0, clock=clock)
    assert set(live.get(["a", "b", "nope"], DAY)) == {"a", "b"}  # an unknown id is left out, as the store does
    assert live.get(["a", "b"], DAY)["a"].status == "active" and reads == [["a", "b", "nope"]]
    store.update_campaign("a", CampaignPatch(status="paused"))
    assert live.get(["a"], DAY)["a"].status == "active"  # within max_age: the entry stands
    live.forget(["a"])  # this process changed it
    assert live.get(["a", "b"], DAY)["a"].status == "paused" and reads[-1] == ["a"]
    clock.t += 1.5
    live.get(["a", "b"], DAY)
    assert reads[-1] == ["a", "b"]  # both older than max_age: read again
    live.get(["a"], "2026-05-29")
    assert reads[-1] == ["a"]  # a new UTC day starts empty


def counting_reads(store: AdStore, max_age_s: float, clock=lambda: NOON) -> tuple[AdService, list[list[str]]]:
    """A keyword-matching service on ``store`` and the list of the live-state reads its decisions make (the
    impression's write re-reads under its lock, with ``db`` given: not counted)."""
    reads: list[list[str]] = []
    real = store.live_states
    store.live_states = lambda ids, day, db=None: (db is None and reads.append(sorted(ids))) or real(ids, day, db)
    service = AdService(
        store,
        ClickSigner(b"0123456789abcdef0123456789abcdef"),
        config=AdsConfig(retrieval="keyword", reserve_cpm_micros=0, live_state_max_age_s=max_age_s),
        clock=clock,
        seed=0,
    )
    return service, reads


def test_a_decision_sees_its_own_charges_and_edits_at_once(tmp_path):
    """The states the impressions' write settled (a CPM charge) are cached as read; what the service edited is
    read again; the rest is not read."""
    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    # 400.00 CPM outbids 399.00 CPM and 0.50 a click, paying 0.399 an impression; at noon, 0.798 of a 1.00
    # daily budget is ahead of pace (pacing stops it)
    cpm = spec("cpm", "cpm", budget=1000.0).model_copy(update={"daily_budget": 1.0})
    store.add_campaigns([cpm, spec("cpm2", "cpm", budget=1000.0).model_copy(update={"bid": 399.0}), spec("cpc")])
    service, reads = counting_reads(store, max_age_s=3600)
    request = AdRequest(query="shoes", slots=1)
    assert [ad.campaign_id for ad in service.serve(request)] == ["cpm"] and reads[-1] == ["cpc", "cpm", "cpm2"]
    reads.clear()
    assert [ad.campaign_id for ad in service.serve(request)] == ["cpm"]
    assert reads == []  # its charge came back from the write, not from another read
    assert service.live.get(["cpm"], DAY)["cpm"] == store.live_states(["cpm"], DAY)["cpm"]  # as the database says
    reads.clear()
    assert [ad.campaign_id for ad in service.serve(request)] == ["cpm2"] and reads == []  # paced out at once
    store.update_campaign("cpm", CampaignPatch(status="paused"))
    service.refresh(["cpm"])  # what the admin API and the catalog poller call after an edit
    assert [ad.campaign_id for ad in service.serve(request)] == ["cpm2"] and reads == [["cpm"]]


def test_live_state_is_read_for_the_best_ranked_first_and_further_down_only_when_they_cannot_enter(tmp_path):
    """Ten CPM campaigns bidding 10..1 CPM; one slot: the top four are read first (twice slots + 1). With the top
    five paused, the next batch (eight) is read and the sixth wins at the seventh's price, as if all were checked."""
    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    store.add_campaigns([spec(f"c{k}", "cpm", budget=1000.0).model_copy(update={"bid": 10.0 - k}) for k in range(10)])
    service, reads = counting_reads(store, max_age_s=0)
    request = AdRequest(query="shoes", slots=1)
    [ad] = service.serve(request)
    assert ad.campaign_id == "c0" and ad.price_micros == 9_000_000 and reads == [["c0", "c1", "c2", "c3"]]
    for k in range(5):
        store.update_campaign(f"c{k}", CampaignPatch(status="paused"))
    reads.clear()
    [ad] = service.serve(request)
    assert ad.campaign_id == "c5" and ad.price_micros == 4_000_000  # second price: c6's 4.00 CPM
    assert reads == [[f"c{k}" for k in range(4)], [f"c{k}" for k in range(4, 10)]]


def test_no_max_age_reads_every_decision_whatever_the_clock(tmp_path):
    """live_state_max_age_s = 0 (the simulator's) reads the states for every decision, even on a clock that does
    not move between two of them."""
    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    store.add_campaigns([spec("a")])
    clock = Clock()
    live = LiveStates(store, max_age_s=0.0, clock=clock)
    live.get(["a"], DAY)
    store.update_campaign("a", CampaignPatch(status="paused"))
    assert live.get(["a"], DAY)["a"].status == "paused"
