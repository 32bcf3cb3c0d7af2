"""Generalized second-price auction with a reserve price, over arrays of candidates.

Bids are compared by eCPM-equivalent value per impression (in micros): a CPC bid
is worth ``bid * pCTR``, a CPM bid ``bid / 1000``. They are ranked by that value
times ``pCTR ** (ctr_exponent - 1)`` (:func:`rank_scores`): an exponent of 1 ranks
by expected revenue per impression; below 1 the predicted click rate counts for
less against the bid ("squashing", Lahaie and Pennock 2007). Each winner pays the
least that keeps its position: the rank score of the next bid below it (or the
reserve, when higher), converted back into its own bid unit, and never more than
its bid.

Why squashing: with pCTR-weighted prices a winner whose pCTR is far above the
runner-up's pays a small fraction of its bid per click, so a better-separated
pCTR lowers prices as much as it raises clicks; an exponent below 1 keeps part
of that gap in the price, at a small cost in clicks (BENCHMARKS.md, Ads: "Revenue
against keyword-only: where the rest could come from"). Where every candidate
has the same pCTR (keyword-only serving) the order and prices are those of
exponent 1.

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
    """Expected micros per impression of each bid (what the reserve is compared with)."""
    return np.where(cpc, bid_micros * pctr, bid_micros / 1000)


def ctr_weights(pctr: np.ndarray, ctr_exponent: float = 1.0) -> np.ndarray:
    """``pCTR ** (ctr_exponent - 1)``: the factor from expected micros per impression to rank score."""
    pctr = np.asarray(pctr, np.float64)
    if ctr_exponent == 1.0:
        return np.ones_like(pctr)
    return np.power(np.maximum(pctr, 1e-12), ctr_exponent - 1.0)


def rank_scores(bid_micros: np.ndarray, cpc: np.ndarray, pctr: np.ndarray, ctr_exponent: float = 1.0) -> np.ndarray:
    """The auction's order: :func:`scores` times :func:`ctr_weights` (CPC: ``bid * pCTR ** ctr_exponent``)."""
    bid_micros, cpc, pctr = np.asarray(bid_micros, np.float64), np.asarray(cpc, bool), np.asarray(pctr, np.float64)
    return scores(bid_micros, cpc, pctr) * ctr_weights(pctr, ctr_exponent)


def run_auction(
    bid_micros: np.ndarray,
    cpc: np.ndarray,
    pctr: np.ndarray,
    slots: int,
    reserve_micros: float = 0.0,
    ctr_exponent: float = 1.0,
) -> list[Win]:
    """Winners for ``slots`` positions, best first, with their GSP prices.

    ``bid_micros``, ``cpc`` (True: a CPC bid, False: CPM) and ``pctr`` hold one entry per candidate.
    ``reserve_micros`` is the least expected micros per impression an ad must reach, and pay, to be shown.
    Ties keep the input order (stable sort), so callers control tie-breaking.
    """
    bid_micros, cpc, pctr = np.asarray(bid_micros, np.float64), np.asarray(cpc, bool), np.asarray(pctr, np.float64)
    value, weight = scores(bid_micros, cpc, pctr), ctr_weights(pctr, ctr_exponent)
    rank = value * weight
    ranked = np.flatnonzero(value >= reserve_micros)
    ranked = ranked[np.argsort(-rank[ranked], kind="stable")][: slots + 1]
    wins = []
    for pos, i in enumerate(ranked[:slots].tolist()):
        runner_up = rank[ranked[pos + 1]] if pos + 1 < len(ranked) else 0.0
        target = max(float(runner_up) / float(weight[i]), reserve_micros)  # micros per impression to keep the slot
        need = target / max(float(pctr[i]), 1e-12) if cpc[i] else target * 1000
        wins.append(Win(i, pos, int(min(bid_micros[i], max(1, np.ceil(need - 1e-9))))))
    return wins
