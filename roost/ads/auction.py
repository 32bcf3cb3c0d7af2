"""Generalized second-price auction with a reserve price.

Bids are ranked by eCPM-equivalent score per impression (in micros): a CPC bid
scores ``bid * pCTR``, a CPM bid ``bid / 1000``. Each winner pays the least that
keeps its position: the score of the next bid below it (or the reserve, when
higher), converted back into its own bid unit, and never more than its bid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Bid:
    key: int  # the caller's index for this candidate
    bid_type: str  # "cpc" or "cpm"
    bid_micros: int  # per click (cpc) or per 1000 impressions (cpm)
    pctr: float

    @property
    def score(self) -> float:
        """Expected micros per impression."""
        return self.bid_micros * self.pctr if self.bid_type == "cpc" else self.bid_micros / 1000

    def price_for(self, score: float) -> int:
        """The bid (in this bid's unit) that reaches ``score``, rounded up to a whole micro."""
        if self.bid_type == "cpc":
            need = score / max(self.pctr, 1e-12)
        else:
            need = score * 1000
        return min(self.bid_micros, max(1, math.ceil(need - 1e-9)))


@dataclass
class Win:
    bid: Bid
    position: int
    price_micros: int


def run_auction(bids: list[Bid], slots: int, reserve_micros: float = 0.0) -> list[Win]:
    """Winners for ``slots`` positions, best first, with their GSP prices.

    ``reserve_micros`` is the least score per impression an ad must reach to be shown.
    Ties keep the input order (stable sort), so callers control tie-breaking.
    """
    ranked = sorted((b for b in bids if b.score >= reserve_micros), key=lambda b: b.score, reverse=True)
    wins = []
    for pos, bid in enumerate(ranked[:slots]):
        runner_up = ranked[pos + 1].score if pos + 1 < len(ranked) else 0.0
        wins.append(Win(bid, pos, bid.price_for(max(runner_up, reserve_micros))))
    return wins
