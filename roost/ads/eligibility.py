"""May this campaign be shown in this context now? One function, one reason per refusal."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from roost.ads.catalog import CampaignInfo
from roost.ads.store import LiveState


@dataclass
class RequestContext:
    now: float
    user_id: str | None = None
    lang: str | None = None                               # None or "und": language targeting does not apply
    unsafe_score: float = 0.0                             # brand-safety score of the context, 0..1
    seen_today: dict[str, int] = field(default_factory=dict)  # campaign id -> this user's impressions today


def ineligible_reason(info: CampaignInfo, state: LiveState | None, ctx: RequestContext,
                      default_safety_threshold: float) -> str | None:
    """None when eligible; otherwise a short reason (useful in tests and debugging)."""
    if state is None:
        return "unknown campaign"
    if state.status != "active":
        return "paused"
    if not state.has_budget():
        return "budget spent"
    if info.start is not None and ctx.now < info.start:
        return "not started"
    if info.end is not None and ctx.now >= info.end:
        return "ended"
    if info.hours is not None and time.gmtime(ctx.now).tm_hour not in info.hours:
        return "outside scheduled hours"
    if info.frequency_cap is not None and ctx.seen_today.get(info.id, 0) >= info.frequency_cap:
        return "frequency cap"
    if info.languages and ctx.lang not in (None, "und") and ctx.lang not in info.languages:
        return "language"
    threshold = info.safety_threshold if info.safety_threshold is not None else default_safety_threshold
    if ctx.unsafe_score > threshold:
        return "brand safety"
    return None
