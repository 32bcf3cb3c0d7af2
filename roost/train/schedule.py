"""Learning-rate schedule: linear warmup, then cosine or warmup-stable-decay (WSD).

The schedule is a pure function of the step and the run's progress, so it has
no state to checkpoint beyond the step. Progress is ``step / total_steps``, or
the fraction of the time budget spent for ``--minutes`` runs (which therefore
decay on the clock, wall or CPU time as ``--clock`` says, and are not bitwise
reproducible).
"""

from __future__ import annotations

import math

from roost.errors import UserError


def lr_factor(step: int, progress: float, *, warmup: int, schedule: str, cooldown: float, min_lr: float) -> float:
    """Multiplier of the peak learning rate for the update made at ``step`` (0-based)."""
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    p = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * p))
    elif schedule == "wsd":
        start = 1.0 - cooldown
        decay = 1.0 if p < start or cooldown == 0 else (1.0 - p) / cooldown
    else:
        raise UserError(f"unknown schedule {schedule!r}; use cosine or wsd")
    return warm * (min_lr + (1.0 - min_lr) * decay)
