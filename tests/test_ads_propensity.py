"""A campaign's click propensity: its clicks over the clicks the click model expected, as a factor on pCTR."""

import numpy as np
import pytest
from test_ads_service import service, spec

from roost.ads.pctr import CTRModel, campaign_propensity, with_propensity
from roost.ads.served_counts import CLICKS, EXPECTED, IMPRESSIONS, ServedCounts
from roost.ads.service import AdRequest, AdsConfig, AdService
from roost.ads.store import AdStore


def test_propensity_is_clicks_over_expected_shrunk_to_one():
    clicks, expected = np.array([0.0, 10.0, 1.0]), np.array([0.0, 2.0, 4.0])
    assert campaign_propensity(clicks, expected, 3.0).tolist() == pytest.approx([1.0, 13 / 5, 4 / 7])
    counts = np.column_stack([np.full(3, 50.0), clicks, expected])
    p = np.array([0.1, 0.5, 0.2])
    assert with_propensity(p, counts, 3.0).tolist() == pytest.approx([0.1, 0.99, 0.2 * 4 / 7])  # kept under 1
    assert with_propensity(p, counts, None) is p


def test_served_counts_start_from_the_database_and_add_expected_clicks():
    counts = ServedCounts({"a": (40, 6, 4.5)})
    counts.add("a", EXPECTED, 0.25)
    counts.add("b", IMPRESSIONS)
    counts.add("b", CLICKS)
    assert counts._by_id == {"a": [40.0, 6.0, 4.75], "b": [1.0, 1.0, 0.0]}


CLICK_MODEL = dict(weights=[0.0, 0.0, 0.0, 0.0, 0.0], bias=float(np.log(0.1 / 0.9)))  # 0.1 for every ad


def clicked_pctrs(svc, times=5):
    """pCTR of the service's one campaign's ad, served and clicked ``times`` in a row."""
    seen = []
    for _ in range(times):
        (ad,) = svc.serve(AdRequest(query="running shoes"))
        seen.append(ad.pctr)
        svc.click(ad.click_token)
    return seen


def shoes_service(tmp_path, prior):
    cfg = AdsConfig(default_frequency_cap=None, propensity_prior_clicks=prior, no_match_quantile=None)
    return service(tmp_path, [spec("a", "running shoes", ["running shoes"])], config=cfg, ctr=CTRModel(**CLICK_MODEL))


def test_a_campaign_clicked_more_than_expected_gets_a_higher_pctr(tmp_path):
    rising = clicked_pctrs(shoes_service(tmp_path / "on", 3.0))
    assert rising[0] == pytest.approx(0.1) and all(b > a for a, b in zip(rising, rising[1:]))
    assert rising[1] == pytest.approx(0.1 * (1 + 3) / (0.1 + 3))  # one click against 0.1 expected
    assert clicked_pctrs(shoes_service(tmp_path / "off", None)) == pytest.approx([0.1] * 5)


def test_the_propensity_survives_a_restart(tmp_path):
    """A second service on the same ads.db (a restarted server) goes on from the clicks and expected clicks the
    first one logged, instead of starting the campaign at 1 again."""
    first = shoes_service(tmp_path / "restarted", 3.0)
    before = clicked_pctrs(first, times=3)
    restarted = AdService(
        AdStore(tmp_path / "restarted" / "ads.db"), first.signer, embed=first.embed, space=first.space,
        config=first.config, ctr=first.ctr, clock=first.clock,
    )  # fmt: skip
    again = clicked_pctrs(restarted, times=2)
    assert again[0] == pytest.approx(0.1 * (3 + 3) / (0.3 + 3))  # three clicks against 0.3 expected
    assert before + again == pytest.approx(clicked_pctrs(shoes_service(tmp_path / "one run", 3.0)))


def test_a_new_click_model_restates_the_expected_clicks(tmp_path):
    """After a switch of click model, a campaign's propensity compares its clicks with what the new model expects
    of its logged impressions, in memory and in ads.db; the clicks stay as they were."""
    svc = shoes_service(tmp_path, 3.0)
    clicked_pctrs(svc, times=4)  # four clicks against 0.4 expected: the propensity is up
    higher = CTRModel(weights=[0.0] * 5, bias=float(np.log(0.5 / 0.5)))  # expects 0.5 of every impression
    svc.use_click_model(higher)
    assert svc.store.click_counts() == {"a": (4, 4, pytest.approx(2.0))}
    (ad,) = svc.serve(AdRequest(query="running shoes"))
    assert ad.pctr == pytest.approx(0.5 * (4 + 3) / (2.0 + 3))
    assert svc.counts._by_id["a"] == pytest.approx([5.0, 4.0, 2.5])
