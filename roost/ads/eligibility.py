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
    lang: str | None = None  # None or "und": language targeting does not apply
    unsafe_score: float = 0.0  # brand-safety score of the context, 0..1
    seen_today: dict[str, int] = field(default_factory=dict)  # campaign id -> this user's impressions today
    exclude: frozenset[str] = frozenset()  # campaigns already on this page (the client says which)


def frequency_cap(info: CampaignInfo, default: int | None) -> int | None:
    """Impressions per user per UTC day: the campaign's own cap, else the server's default (None: uncapped)."""
    return info.frequency_cap if info.frequency_cap is not None else default


def ineligible_reason(
    info: CampaignInfo,
    state: LiveState | None,
    ctx: RequestContext,
    default_safety_threshold: float,
    default_frequency_cap: int | None = None,
) -> str | None:
    """None when eligible; otherwise a short reason (useful in tests and debugging)."""
    if info.id in ctx.exclude:
        return "already on the page"
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
    cap = frequency_cap(info, default_frequency_cap)
    if cap is not None and ctx.user_id is not None and ctx.seen_today.get(info.id, 0) >= cap:
        return "frequency cap"
    if info.languages and ctx.lang not in (None, "und") and ctx.lang not in info.languages:
        return "language"
    threshold = info.safety_threshold if info.safety_threshold is not None else default_safety_threshold
    if ctx.unsafe_score > threshold:
        return "brand safety"
    return None
