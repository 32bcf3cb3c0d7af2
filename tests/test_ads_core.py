"""Ads building blocks: campaign validation, auction, pacing, click tokens, the store's money rules."""

import random
import threading

import pytest

from roost.ads.auction import run_auction
from roost.ads.campaign import CampaignSpec, parse_campaigns, to_micros
from roost.ads.clicks import BadToken, ClickSigner, load_or_create_secret
from roost.ads.pacing import DAY_S, participation
from roost.ads.store import AdStore, Impression


def campaign(**over) -> dict:
    body = {
        "id": "c1",
        "advertiser": "Acme",
        "name": "Shoes",
        "budget": "10",
        "bid_type": "cpc",
        "bid": 0.5,
        "targeting": {"keywords": ["running shoes"]},
        "creatives": [{"text": "Fast running shoes", "landing_url": "https://acme.example/shoes"}],
    }
    body.update(over)
    return body


# --- campaigns -----------------------------------------------------------------------------


def test_money_becomes_exact_integer_micros():
    spec = CampaignSpec.model_validate(campaign(budget=0.1, bid="0.000003"))
    assert to_micros(spec.budget) == 100_000 and to_micros(spec.bid) == 3


@pytest.mark.parametrize(
    "over, field",
    [
        ({"bid_type": "cpa"}, "bid_type"),
        ({"budget": -1}, "budget"),
        ({"bid": "0.0000001"}, "bid"),
        ({"creatives": [{"text": "x", "landing_url": "javascript:alert(1)"}]}, "creatives.0.landing_url"),
        ({"creatives": [{"text": "x", "landing_url": "ftp://files.example/x"}]}, "creatives.0.landing_url"),
        ({"creatives": []}, "creatives"),
        ({"max_bid": 0.1}, "max_bid"),
        ({"targeting": {"keyword": ["typo"]}}, "targeting.keyword"),
    ],
)
def test_bad_campaigns_are_refused_naming_campaign_and_field(over, field):
    with pytest.raises(ValueError) as e:
        parse_campaigns({"campaigns": [campaign(id="ok"), campaign(**over)]}, "ads.json")
    msg = str(e.value)
    assert msg.startswith("ads.json: campaign #1 (c1):"), msg
    assert field.split(".")[0] in msg


def test_duplicate_ids_in_one_file_are_refused():
    with pytest.raises(ValueError, match="duplicate campaign id 'c1'"):
        parse_campaigns([campaign(), campaign()], "f.json")


# --- auction -------------------------------------------------------------------------------


def test_gsp_each_winner_pays_the_least_that_keeps_its_position():
    bids = [1_000_000, 2_000_000, 5_000_000, 1_000_000]
    cpc = [True, True, False, False]
    pctr = [0.02, 0.005, 1.0, 1.0]  # scores 20000, 10000, 5000, and 1000: below the reserve
    wins = run_auction(bids, cpc, pctr, slots=3, reserve_micros=2000)
    assert [(w.index, w.position) for w in wins] == [(0, 0), (1, 1), (2, 2)]
    assert wins[0].price_micros == 500_000  # 10000 / 0.02
    assert wins[1].price_micros == 1_000_000  # 5000 / 0.005
    assert wins[2].price_micros == 2_000_000  # reserve 2000 per impression = 2.0 CPM (bid 3 is below it)
    assert all(w.price_micros <= bids[w.index] for w in wins)


def test_gsp_price_never_exceeds_the_bid_and_reserve_filters():
    wins = run_auction([100], [True], [0.5], slots=2, reserve_micros=40)
    assert wins[0].price_micros == 80
    assert run_auction([100], [True], [0.1], slots=1, reserve_micros=40) == []


def test_gsp_ties_keep_the_input_order_and_the_second_pays_the_first_bids_score():
    wins = run_auction([500, 500, 500], [True, True, True], [0.1, 0.1, 0.1], slots=2)
    assert [w.index for w in wins] == [0, 1] and [w.price_micros for w in wins] == [500, 500]


# --- pacing --------------------------------------------------------------------------------


def test_pacing_throttles_campaigns_ahead_of_the_day():
    noon = 1_767_225_600 + DAY_S / 2
    assert participation(0, None, noon) == 1.0
    assert participation(400_000, 1_000_000, noon) == 1.0  # 40% spent at 50% of the day
    assert 0.0 < participation(550_000, 1_000_000, noon) < 1.0  # a bit ahead
    assert participation(700_000, 1_000_000, noon) == 0.0  # far ahead
    assert participation(10_000, 1_000_000, 1_767_225_600) == 1.0  # warm-up at midnight


# --- click tokens --------------------------------------------------------------------------


def test_click_tokens_verify_and_refuse_forgery_and_expiry(tmp_path):
    secret = load_or_create_secret(tmp_path / "secret")
    assert load_or_create_secret(tmp_path / "secret") == secret  # created once, then kept
    signer = ClickSigner(secret, ttl_s=60)
    token = signer.sign("imp1", now=1000)
    assert signer.verify(token, now=1030) == "imp1"
    with pytest.raises(BadToken, match="expired"):
        signer.verify(token, now=1061)
    sig = token.split(".")[1]
    forged = ClickSigner(b"another-secret-another-secret!!").sign("imp1", now=1000)
    with pytest.raises(BadToken, match="signature"):
        signer.verify(forged, now=1000)
    with pytest.raises(BadToken, match="signature"):
        signer.verify(forged.split(".")[0] + "." + sig, now=1000)
    with pytest.raises(BadToken, match="malformed"):
        signer.verify("not-a-token", now=1000)


# --- store ---------------------------------------------------------------------------------


def impression(cid="c1", price=400_000, ts=1_767_230_000.0) -> Impression:
    return Impression(cid, 1, "u1", 0, price, 0.1, {}, ts)


def test_store_uses_wal_and_full_sync(tmp_path):
    store = AdStore(tmp_path / "ads.db")
    db = store._conn()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_clicks_charge_once_and_never_past_the_budget(tmp_path):
    store = AdStore(tmp_path / "ads.db")
    store.add_campaigns([CampaignSpec.model_validate(campaign(budget=1, bid=0.4))])
    imps = store.record_impressions([impression() for _ in range(5)])
    assert len(imps) == 5 and len({i.id for i in imps}) == 5
    first = store.record_click(imps[0].id)
    assert first.charged_micros == 400_000 and not first.duplicate
    again = store.record_click(imps[0].id)
    assert again.duplicate and again.charged_micros == 0
    charges = [store.record_click(i.id).charged_micros for i in imps[1:]]
    assert charges == [400_000, 200_000, 0, 0]  # the third pays the remainder; spent out, the rest are free
    view = store.campaign_view("c1")
    assert view["spend_micros"] == 1_000_000 and view["clicks"] == 5 and view["impressions"] == 5
    assert store.record_impressions([impression()]) == []  # no budget: not shown
    assert store.record_click("no-such-impression") is None


def test_cpm_impressions_are_charged_per_mille_and_never_past_the_budget(tmp_path):
    store = AdStore(tmp_path / "ads.db")
    store.add_campaigns([CampaignSpec.model_validate(campaign(bid_type="cpm", bid=2, budget=2))])
    kept = store.record_impressions([impression(price=1_500_000) for _ in range(1400)])
    assert len(kept) == 1334  # 1500 micros each; the 1334th pays the 500 left of 2,000,000
    assert store.campaign_view("c1")["spend_micros"] == 2_000_000
    charged = store._conn().execute("SELECT charged_micros FROM impressions ORDER BY rowid DESC LIMIT 2").fetchall()
    assert [r[0] for r in charged] == [500, 1500]
    rows = store.report()
    assert rows == [
        {
            "campaign_id": "c1",
            "day": "2026-01-01",
            "impressions": 1334,
            "clicks": 0,
            "ctr": 0.0,
            "spend": 2.0,
            "spend_micros": 2_000_000,
        }
    ]


def test_concurrent_clicks_never_overspend(tmp_path):
    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    store.add_campaigns([CampaignSpec.model_validate(campaign(budget=2, bid=0.3, max_bid=0.3))])
    imps = store.record_impressions([impression(price=300_000) for _ in range(40)])
    order = [i.id for i in imps] * 2  # every click twice: replays must not charge
    random.Random(0).shuffle(order)

    def worker(ids):
        for i in ids:
            store.record_click(i)

    threads = [threading.Thread(target=worker, args=(order[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    view = store.campaign_view("c1")
    assert view["clicks"] == 40
    assert view["spend_micros"] == 2_000_000  # spent to the micro, never past it
    charged = store._conn().execute("SELECT SUM(charged_micros) FROM clicks").fetchone()[0]
    assert charged == view["spend_micros"]
