"""Ground truth of the sample network, and the click model that ad simulations draw from.

``truth/`` holds what real data never tells you, so later stages can be scored:

- ``topics.json``: the topic list;
- ``post_topics.jsonl``: one line per post, ``{"id", "topic", "kind", ...}`` (``topic`` is null for
  spam and empty posts; ``kind`` names the dirt of extra posts; ``dirt`` lists rewrites such as
  mojibake; ``act`` is a reply's speech act; ``subject`` what an English post is about, which its English
  replies take up; ``copy_of`` points a duplicate or retweet at its source; ``unsafe`` the category of an
  unsafe post, null for a safe one the platform flagged, and ``moderation`` what the platform did to either,
  see :mod:`roost.sample.moderation`);
- ``user_interests.json``: user id -> {topic: weight}, weights summing to 1;
- ``campaign_topics.json``: campaign id (the ``"id"`` in ads.json) -> topics;
- ``click_model.json``: the parameters of :class:`ClickModel`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

TRUTH_DIR = "truth"
W_AFFINITY = 4.0
POSITION_DECAY = 0.5
FORMULA = (
    "p = sigmoid(base[campaign] + w_affinity * affinity(user, campaign) - position_decay * position), "
    "affinity = sum of the user's interest weights over the campaign's topics (0..1), position 0 = top slot"
)


@dataclass
class ClickModel:
    """The probability that a user clicks a campaign's ad shown at a slot.

    ``p = sigmoid(base[c] + w_affinity * affinity(u, c) - position_decay * position)``:
    users click ads on topics they care about, and lower slots get fewer clicks.
    """

    interests: dict[str, dict[str, float]]
    campaign_topics: dict[str, list[str]]
    campaign_base: dict[str, float]
    w_affinity: float = W_AFFINITY
    position_decay: float = POSITION_DECAY

    @classmethod
    def load(cls, sample_dir: str | Path) -> ClickModel:
        truth = Path(sample_dir) / TRUTH_DIR
        if not (truth / "click_model.json").exists():
            raise FileNotFoundError(
                f"{truth / 'click_model.json'} not found; run `roost sample --out {sample_dir}` first"
            )
        params = json.loads((truth / "click_model.json").read_text())
        return cls(
            interests=json.loads((truth / "user_interests.json").read_text()),
            campaign_topics=json.loads((truth / "campaign_topics.json").read_text()),
            campaign_base=params["campaign_base"],
            w_affinity=params["w_affinity"],
            position_decay=params["position_decay"],
        )

    def affinity(self, user_id: str, campaign_id: str) -> float:
        if user_id not in self.interests:
            raise ValueError(f"unknown user id {user_id!r}: not in the sample's truth/user_interests.json")
        if campaign_id not in self.campaign_topics:
            raise ValueError(f"unknown campaign id {campaign_id!r}: not in the sample's truth/campaign_topics.json")
        mine = self.interests[user_id]
        return sum(mine.get(t, 0.0) for t in self.campaign_topics[campaign_id])

    def p_click(self, user_id: str, campaign_id: str, position: int) -> float:
        if position < 0:
            raise ValueError(f"position must be >= 0 (0 = top slot), got {position}")
        affinity = self.affinity(user_id, campaign_id)  # checks both ids
        logit = self.campaign_base[campaign_id] + self.w_affinity * affinity - self.position_decay * position
        return 1.0 / (1.0 + math.exp(-logit))

    def params(self) -> dict:
        return {
            "formula": FORMULA,
            "w_affinity": self.w_affinity,
            "position_decay": self.position_decay,
            "campaign_base": self.campaign_base,
        }
