"""May these campaigns be shown in this context now? One numpy pass over a decision's candidates.

A candidate is refused when it is already on the page, not started or ended,
outside its scheduled hours, at its frequency cap for this user today, targeting
other languages, or when the context's brand-safety score is above its
threshold: what the catalog knows. Whether it is unknown to the database, paused
or out of budget is its live state (:func:`roost.ads.live.summary`), read only
for the candidates the auction reaches (:meth:`roost.ads.service.AdService._auction`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from roost.ads.catalog import CampaignArrays, CampaignInfo


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


def eligible(
    arrays: CampaignArrays,
    campaigns: dict[str, CampaignInfo],
    rows: np.ndarray,
    ctx: RequestContext,
    default_safety_threshold: float,
    default_frequency_cap: int | None = None,
) -> np.ndarray:
    """True where the campaign at catalog row ``rows[k]`` may be shown, as far as the catalog knows."""
    ok = (arrays.start[rows] <= ctx.now) & (ctx.now < arrays.end[rows])
    ok &= (arrays.hours[rows] >> time.gmtime(ctx.now).tm_hour) & 1 == 1
    threshold = arrays.safety_threshold[rows]
    ok &= ~(ctx.unsafe_score > np.where(np.isnan(threshold), default_safety_threshold, threshold))
    if ctx.user_id is not None and ctx.seen_today:
        cap = arrays.frequency_cap[rows]
        cap = np.where(np.isnan(cap), np.inf if default_frequency_cap is None else default_frequency_cap, cap)
        ok &= _per_row(arrays, ctx.seen_today, rows) < cap
    if ctx.exclude:
        ok &= _per_row(arrays, dict.fromkeys(ctx.exclude, 1), rows) == 0
    if ctx.lang not in (None, "und"):
        for k in np.flatnonzero(ok & arrays.has_languages[rows]).tolist():
            ok[k] = ctx.lang in campaigns[arrays.ids[rows[k]]].languages
    return ok


def _per_row(arrays: CampaignArrays, by_id: dict[str, int], rows: np.ndarray) -> np.ndarray:
    """``by_id``'s value for each row's campaign, 0 where it has none: a few campaigns (a user's day, a page)
    looked up among a decision's hundred and more candidates by sorted search, not a dict lookup per candidate."""
    known = [(arrays.row[cid], n) for cid, n in by_id.items() if cid in arrays.row]
    if not known:
        return np.zeros(len(rows), np.int64)
    keys, values = np.array(sorted(known), np.int64).T
    at = np.minimum(np.searchsorted(keys, rows), len(keys) - 1)
    return np.where(keys[at] == rows, values[at], 0)
