"""A campaign's click propensity: its clicks over the clicks the click model expected, as a factor on pCTR."""

import numpy as np
import pytest
from test_ads_service import service, spec

from roost.ads.pctr import CTRModel, campaign_propensity, with_propensity
from roost.ads.served_counts import CLICKS, EXPECTED, IMPRESSIONS, ServedCounts
from roost.ads.service import AdRequest, AdsConfig


def test_propensity_is_clicks_over_expected_shrunk_to_one():
    clicks, expected = np.array([0.0, 10.0, 1.0]), np.array([0.0, 2.0, 4.0])
    assert campaign_propensity(clicks, expected, 3.0).tolist() == pytest.approx([1.0, 13 / 5, 4 / 7])
    counts = np.column_stack([np.full(3, 50.0), clicks, expected])
    p = np.array([0.1, 0.5, 0.2])
    assert with_propensity(p, counts, 3.0).tolist() == pytest.approx([0.1, 0.99, 0.2 * 4 / 7])  # kept under 1
    assert with_propensity(p, counts, None) is p


def test_served_counts_start_without_evidence_and_add_expected_clicks():
    counts = ServedCounts({"a": (40, 6)})  # the database keeps impressions and clicks, not expected clicks
    counts.add("a", EXPECTED, 0.25)
    counts.add("b", IMPRESSIONS)
    counts.add("b", CLICKS)
    assert counts._by_id == {"a": [40.0, 6.0, 6.25], "b": [1.0, 1.0, 0.0]}


def clicked_pctrs(tmp_path, prior):
    """pCTR of one campaign's ad, served and clicked five times in a row (the click model gives it 0.1)."""
    cfg = AdsConfig(default_frequency_cap=None, propensity_prior_clicks=prior, no_match_quantile=None)
    svc = service(tmp_path, [spec("a", "running shoes", ["running shoes"])], config=cfg, ctr=CTRModel(
        weights=[0.0, 0.0, 0.0, 0.0, 0.0], bias=float(np.log(0.1 / 0.9))))  # fmt: skip
    seen = []
    for _ in range(5):
        (ad,) = svc.serve(AdRequest(query="running shoes"))
        seen.append(ad.pctr)
        svc.click(ad.click_token)
    return seen


def test_a_campaign_clicked_more_than_expected_gets_a_higher_pctr(tmp_path):
    rising = clicked_pctrs(tmp_path / "on", 3.0)
    assert rising[0] == pytest.approx(0.1) and all(b > a for a, b in zip(rising, rising[1:]))
    assert rising[1] == pytest.approx(0.1 * (1 + 3) / (0.1 + 3))  # one click against 0.1 expected
    assert clicked_pctrs(tmp_path / "off", None) == pytest.approx([0.1] * 5)
