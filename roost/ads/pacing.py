"""Budget pacing: spread a daily budget over the day by probabilistic throttling.

A campaign that has spent a larger fraction of its daily budget than the
fraction of the UTC day that has passed is let into fewer auctions, in
proportion to how far ahead it is; one on or behind schedule always enters.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DAY_S = 86_400


@dataclass
class PacingConfig:
    tolerance: float = 0.1  # how far ahead of schedule (fraction of the daily budget) before it stops entirely
    warmup: float = 0.02    # spend this fraction freely at the start of the day, so small budgets start


def participation(day_spend_micros: int, daily_budget_micros: int | None, now: float,
                  config: PacingConfig | None = None) -> float:
    """Probability that the campaign enters this auction (1.0 without a daily budget)."""
    config = config or PacingConfig()
    if daily_budget_micros is None:
        return 1.0
    spent = day_spend_micros / daily_budget_micros
    elapsed = (now % DAY_S) / DAY_S
    ahead = spent - max(elapsed, config.warmup)
    if ahead <= 0:
        return 1.0
    return max(0.0, 1.0 - ahead / config.tolerance)


def admit(day_spend_micros: int, daily_budget_micros: int | None, now: float, rng: random.Random,
          config: PacingConfig | None = None) -> bool:
    p = participation(day_spend_micros, daily_budget_micros, now, config)
    return p >= 1.0 or rng.random() < p
