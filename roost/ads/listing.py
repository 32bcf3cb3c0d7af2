"""Campaigns as a marketer reads them: money, pacing and delivery, listed a page at a time in any order.

``GET /admin/campaigns``, ``GET /admin/campaigns/{id}`` and the dashboard all
read this one listing, so they agree to the cent. Sorting and paging happen in
the database (one statement, whitelisted sort columns), so a page of 100k campaigns
costs one query, not a load of every campaign into Python. The SQL is the
same for SQLite and PostgreSQL (``LOWER`` for case-blind order, explicit casts
so counts stay integers and CTR a float in both).

Prices are per click for CPC campaigns and per 1,000 impressions for CPM ones,
and an auction charges the second price (what the next ad would have needed to
win), never more than the bid; ``price_unit`` says which, in words.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from roost.ads.campaign import from_micros
from roost.ads.pacing import PacingConfig, pacing_state
from roost.ads.store import AdStore, utc_day
from roost.errors import UserError

PRICE_UNIT = {"cpc": "per click", "cpm": "per 1,000 impressions"}

# sort key -> SQL expression over the query below (never user text in the SQL)
SORTS = {
    "name": "LOWER(c.name)",
    "advertiser": "LOWER(a.name)",
    "status": "c.status",
    "bid": "c.bid_micros",
    "budget": "c.budget_micros",
    "spend": "c.spend_micros",
    "remaining": "c.budget_micros - c.spend_micros",
    "impressions": "impressions",
    "clicks": "clicks",
    "ctr": "ctr",
    "predicted_ctr": "predicted_ctr",
    "created": "c.created_at",
}

_SELECT = """
SELECT c.id, c.name, a.name AS advertiser, c.status, c.bid_type, c.bid_micros, c.max_bid_micros,
       c.budget_micros, c.daily_budget_micros, c.spend_micros, COALESCE(d.spend_micros, 0) AS day_spend,
       COALESCE(t.impressions, 0) AS impressions, COALESCE(t.clicks, 0) AS clicks,
       CASE WHEN t.impressions > 0 THEN CAST(t.clicks AS DOUBLE PRECISION) / t.impressions ELSE 0.0 END AS ctr,
       CASE WHEN t.impressions > 0 THEN t.pctr_sum / t.impressions END AS predicted_ctr
FROM campaigns c JOIN advertisers a ON a.id = c.advertiser_id
LEFT JOIN (SELECT campaign_id, CAST(SUM(impressions) AS BIGINT) AS impressions, CAST(SUM(clicks) AS BIGINT) AS clicks,
                  SUM(pctr_sum) AS pctr_sum
           FROM daily_stats {where_stats} GROUP BY campaign_id) t ON t.campaign_id = c.id
LEFT JOIN daily_stats d ON d.campaign_id = c.id AND d.day = ?
"""


@dataclass
class ListQuery:
    """One page of the listing: ``sort`` is a key of :data:`SORTS`, ``order`` asc or desc."""

    sort: str = "spend"
    order: str = "desc"
    limit: int = 50
    offset: int = 0

    def __post_init__(self):
        if self.sort not in SORTS:
            raise UserError(f"sort must be one of {sorted(SORTS)}, got {self.sort!r}")
        if self.order not in ("asc", "desc"):
            raise UserError(f"order must be asc or desc, got {self.order!r}")


def _row(r, now: float, pacing: PacingConfig | None) -> dict:
    daily = r["daily_budget_micros"]
    return {
        "id": r["id"],
        "name": r["name"],
        "advertiser": r["advertiser"],
        "status": r["status"],
        "bid_type": r["bid_type"],
        "price_unit": PRICE_UNIT[r["bid_type"]],
        "bid": from_micros(r["bid_micros"]),
        "max_bid": from_micros(r["max_bid_micros"]),
        "budget": from_micros(r["budget_micros"]),
        "daily_budget": from_micros(daily) if daily else None,
        "spend": from_micros(r["spend_micros"]),
        "spend_micros": r["spend_micros"],
        "remaining": from_micros(r["budget_micros"] - r["spend_micros"]),
        "spend_today": from_micros(r["day_spend"]),
        "pacing": pacing_state(r["status"], r["spend_micros"], r["budget_micros"], r["day_spend"], daily, now, pacing),
        "impressions": r["impressions"],
        "clicks": r["clicks"],
        "ctr": r["ctr"],
        "predicted_ctr": r["predicted_ctr"],
    }


def list_campaigns(
    store: AdStore, query: ListQuery | None = None, now: float | None = None, pacing: PacingConfig | None = None
) -> dict:
    """One page of all campaigns, sorted, with ``total`` and ``has_more`` for the pager."""
    q = query or ListQuery()
    now = time.time() if now is None else now
    db = store.reader()
    total = db.execute("SELECT COUNT(*) FROM campaigns").fetchone()[0]
    rows = db.execute(
        _SELECT.format(where_stats="") + f" ORDER BY {SORTS[q.sort]} {q.order.upper()}, c.rowid LIMIT ? OFFSET ?",
        (utc_day(now), q.limit, q.offset),
    ).fetchall()
    return {
        "object": "list",
        "data": [_row(r, now, pacing) for r in rows],
        "total": total,
        "offset": q.offset,
        "limit": q.limit,
        "sort": q.sort,
        "order": q.order,
        "has_more": q.offset + len(rows) < total,
    }


def campaign_money(
    store: AdStore, campaign_id: str, now: float | None = None, pacing: PacingConfig | None = None
) -> dict | None:
    """The listing's row for one campaign (None when there is no such campaign)."""
    now = time.time() if now is None else now
    r = (
        store.reader()
        .execute(
            _SELECT.format(where_stats="WHERE campaign_id = ?") + " WHERE c.id = ?",
            (campaign_id, utc_day(now), campaign_id),
        )
        .fetchone()
    )
    return _row(r, now, pacing) if r is not None else None
