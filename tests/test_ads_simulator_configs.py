"""The simulator serves a policy with the settings it is given (bench/ads_revenue.py varies ctr_exponent)."""

import dataclasses

from test_ads_models import world

from roost.ads.campaign import CampaignSpec
from roost.ads.context import UserHistory
from roost.ads.embedder import HashingEmbedder
from roost.ads.simulator import POLICIES, SimConfig, simulate


def test_simulate_serves_with_the_configs_given_and_leaves_the_policies_alone(tmp_path):
    campaigns, truth = world(tmp_path)
    specs = [CampaignSpec.model_validate(c) for c in campaigns]
    h, history = HashingEmbedder(), UserHistory.from_corpus(tmp_path / "corpus")
    cfg = SimConfig(requests=150, slots=2)
    (filled,) = simulate(specs, history, truth, h, h.space, cfg, ("keyword",))
    unfilled = dataclasses.replace(POLICIES["keyword"], fill=False)
    (targeted,) = simulate(specs, history, truth, h, h.space, cfg, ("keyword",), configs={"keyword": unfilled})
    assert filled["impressions"] == 2 * 150  # run-of-network fills what keywords leave empty
    assert targeted["impressions"] < filled["impressions"]  # without fill, only keyword matches: most users none
    assert POLICIES["keyword"].fill
