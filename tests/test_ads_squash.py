"""Squashed GSP (issue 16, revenue): the pCTR's weight in the auction's order and prices."""

import numpy as np
import pytest
from test_ads_service import service as make_service
from test_ads_service import spec

from roost.ads.auction import ctr_weights, rank_scores, run_auction
from roost.ads.pctr import CTRModel
from roost.ads.service import AdRequest, AdsConfig, AdService
from roost.errors import UserError


def test_exponent_one_is_plain_gsp_and_equal_pctrs_ignore_the_exponent():
    rng = np.random.default_rng(0)
    bids = rng.integers(10_000, 3_000_000, 12)
    cpc = rng.random(12) < 0.7
    pctr = rng.uniform(0.01, 0.5, 12)

    def outcome(p, exponent):
        return [(w.index, w.position, w.price_micros) for w in run_auction(bids, cpc, p, 3, 500, exponent)]

    assert outcome(pctr, 1.0) == outcome(pctr, 1)  # the default
    same = np.full(12, 0.04)  # keyword-only serving: one pCTR for every candidate
    assert outcome(same, 0.5) == outcome(same, 1.0) == outcome(same, 0.0)


def test_squashing_keeps_part_of_the_pctr_gap_in_the_price():
    # a: $1.00 a click at pCTR 0.4; b: $1.50 at 0.1. Exponent 1: a pays 1.5 * 0.1 / 0.4 = $0.375 a click;
    # exponent 0.5: a still wins (1 * 0.4**0.5 > 1.5 * 0.1**0.5) and pays 1.5 * (0.1 / 0.4) ** 0.5 = $0.75
    bids, cpc, pctr = [1_000_000, 1_500_000], [True, True], [0.4, 0.1]
    assert [(w.index, w.price_micros) for w in run_auction(bids, cpc, pctr, 1, 0, 1.0)] == [(0, 375_000)]
    assert [(w.index, w.price_micros) for w in run_auction(bids, cpc, pctr, 1, 0, 0.5)] == [(0, 750_000)]


@pytest.mark.parametrize("exponent", [1.0, 0.5, 0.25])
def test_every_price_is_the_least_that_keeps_the_position_and_at_most_the_bid(exponent):
    rng, reserve = np.random.default_rng(1), 100.0
    for _ in range(50):
        n = int(rng.integers(2, 8))
        bids, cpc, pctr = rng.integers(1_000, 2_000_000, n), rng.random(n) < 0.6, rng.uniform(0.005, 0.6, n)
        rank = rank_scores(bids, cpc, pctr, exponent)
        value = rank_scores(bids, cpc, pctr)  # expected micros per impression
        entering = [j for j in np.argsort(-rank, kind="stable") if value[j] >= reserve]
        wins = run_auction(bids, cpc, pctr, 2, reserve, exponent)
        assert [w.index for w in wins] == entering[:2]
        for w in wins:
            i = w.index
            assert 1 <= w.price_micros <= bids[i]
            if w.price_micros == bids[i]:
                continue
            at = rank_scores([w.price_micros, w.price_micros - 1], [cpc[i]] * 2, [pctr[i]] * 2, exponent)
            floor = reserve * ctr_weights(pctr[i : i + 1], exponent)[0]  # the reserve in rank units
            nxt = entering[w.position + 1] if w.position + 1 < len(entering) else None
            need = max(rank[nxt] if nxt is not None else 0.0, floor)
            assert at[0] >= need * (1 - 1e-9)  # keeps its place (and the reserve)
            assert at[1] < need  # one micro less would not


def service(tmp_path, exponent: float, use_pctr: bool = True) -> AdService:
    folder = tmp_path / f"{exponent}-{use_pctr}"
    folder.mkdir()
    specs = [
        spec("shoes", "running shoes for your run", ["running shoes"], bid=1.0),
        spec("socks", "running socks", bid=1.5),
    ]
    cfg = AdsConfig(ctr_exponent=exponent, use_pctr=use_pctr, default_frequency_cap=None, no_match_quantile=None)
    # clicks follow the interest share (1 for the campaign whose keyword the query names, 0 for the other)
    return make_service(folder, specs, ctr=CTRModel(weights=[0.0, 2.0, -0.4, 0.0, 0.0], bias=-2.5), config=cfg)


def test_service_squashes_pctr_and_keyword_serving_is_unchanged(tmp_path):
    req = AdRequest(query="new running shoes", slots=1)
    plain = service(tmp_path, 1.0).serve(req)
    squashed = service(tmp_path, 0.5).serve(req)
    assert [a.campaign_id for a in plain] == [a.campaign_id for a in squashed] == ["shoes"]
    assert squashed[0].price_micros > plain[0].price_micros
    flat = [service(tmp_path, e, use_pctr=False).serve(req) for e in (1.0, 0.5)]  # one pCTR for all: by bid
    assert [(a.campaign_id, a.price_micros) for a in flat[0]] == [(a.campaign_id, a.price_micros) for a in flat[1]]


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_exponent_outside_zero_to_one_is_refused(bad):
    with pytest.raises(UserError, match="ctr_exponent"):
        AdsConfig(ctr_exponent=bad)
