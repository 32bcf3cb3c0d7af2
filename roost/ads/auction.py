"""Generalized second-price auction with a reserve price, over arrays of candidates.

Bids are ranked by eCPM-equivalent score per impression (in micros): a CPC bid
scores ``bid * pCTR``, a CPM bid ``bid / 1000``. Each winner pays the least that
keeps its position: the score of the next bid below it (or the reserve, when
higher), converted back into its own bid unit, and never more than its bid.

Why arrays: a decision at 100k campaigns has a hundred and more candidates, and
one numpy pass over them costs less than a Python object per bid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Win:
    index: int  # the candidate's position in the caller's arrays
    position: int  # the slot, 0 first
    price_micros: int  # per click (cpc) or per 1000 impressions (cpm)


def scores(bid_micros: np.ndarray, cpc: np.ndarray, pctr: np.ndarray) -> np.ndarray:
    """Expected micros per impression of each bid."""
    return np.where(cpc, bid_micros * pctr, bid_micros / 1000)


def run_auction(
    bid_micros: np.ndarray, cpc: np.ndarray, pctr: np.ndarray, slots: int, reserve_micros: float = 0.0
) -> list[Win]:
    """Winners for ``slots`` positions, best first, with their GSP prices.

    ``bid_micros``, ``cpc`` (True: a CPC bid, False: CPM) and ``pctr`` hold one entry per candidate.
    ``reserve_micros`` is the least score per impression an ad must reach to be shown.
    Ties keep the input order (stable sort), so callers control tie-breaking.
    """
    bid_micros, cpc, pctr = np.asarray(bid_micros, np.float64), np.asarray(cpc, bool), np.asarray(pctr, np.float64)
    score = scores(bid_micros, cpc, pctr)
    ranked = np.flatnonzero(score >= reserve_micros)
    ranked = ranked[np.argsort(-score[ranked], kind="stable")][: slots + 1]
    wins = []
    for pos, i in enumerate(ranked[:slots].tolist()):
        runner_up = score[ranked[pos + 1]] if pos + 1 < len(ranked) else 0.0
        target = max(float(runner_up), reserve_micros)
        need = target / max(float(pctr[i]), 1e-12) if cpc[i] else target * 1000
        wins.append(Win(i, pos, int(min(bid_micros[i], max(1, np.ceil(need - 1e-9))))))
    return wins
