"""Budget pacing: spread a daily budget over the day by probabilistic throttling.

A campaign that has spent a larger fraction of its daily budget than the
fraction of the UTC day that has passed is let into fewer auctions, in
proportion to how far ahead it is; one on or behind schedule always enters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY_S = 86_400


@dataclass
class PacingConfig:
    tolerance: float = 0.1  # how far ahead of schedule (fraction of the daily budget) before it stops entirely
    warmup: float = 0.02  # spend this fraction freely at the start of the day, so small budgets start


def participation(
    day_spend_micros: int, daily_budget_micros: int | None, now: float, config: PacingConfig | None = None
) -> float:
    """Probability that the campaign enters this auction (1.0 without a daily budget)."""
    budget = np.nan if daily_budget_micros is None else daily_budget_micros
    return float(participations(np.array([day_spend_micros], float), np.array([budget], float), now, config)[0])


def participations(
    day_spend_micros: np.ndarray, daily_budget_micros: np.ndarray, now: float, config: PacingConfig | None = None
) -> np.ndarray:
    """:func:`participation` of many campaigns at once (``daily_budget_micros`` NaN: no daily budget)."""
    config = config or PacingConfig()
    elapsed = (now % DAY_S) / DAY_S
    with np.errstate(invalid="ignore", divide="ignore"):
        ahead = day_spend_micros / daily_budget_micros - max(elapsed, config.warmup)
    p = np.clip(1.0 - ahead / config.tolerance, 0.0, 1.0)
    return np.where(np.isnan(ahead) | (ahead <= 0), 1.0, p)


def admitted(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Which campaigns enter, each with its participation probability ``p`` (certain at 1)."""
    return (p >= 1.0) | (rng.random(len(p)) < p)


def pacing_state(
    status: str,
    spend_micros: int,
    budget_micros: int,
    day_spend_micros: int,
    daily_budget_micros: int | None,
    now: float,
    config: PacingConfig | None = None,
) -> dict:
    """What a marketer needs to know about delivery now: a state and the share of auctions the campaign enters.

    States: ``paused``, ``budget_spent``, ``daily_budget_spent``, ``unpaced`` (no daily budget: it enters
    every auction it qualifies for), ``on_pace`` and ``ahead`` (spent more of the day's budget than of the
    day has passed, so it is let into only ``participation`` of its auctions).
    """
    if status != "active":
        return {"state": "paused", "participation": 0.0}
    if spend_micros >= budget_micros:
        return {"state": "budget_spent", "participation": 0.0}
    if daily_budget_micros is None:
        return {"state": "unpaced", "participation": 1.0}
    if day_spend_micros >= daily_budget_micros:
        return {"state": "daily_budget_spent", "participation": 0.0}
    p = participation(day_spend_micros, daily_budget_micros, now, config)
    return {"state": "on_pace" if p >= 1.0 else "ahead", "participation": round(p, 4)}
