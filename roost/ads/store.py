"""The ads database: campaigns, creatives, impressions, clicks and spend, in SQLite or PostgreSQL.

One store, two backends (:mod:`roost.ads.db`): a SQLite file is the embedded
default; ``postgresql://...`` puts the money of many serving replicas in one
database. The SQL below is written once for both.

Why these choices:
- Money is integer micros in every column.
- Every charge runs in one transaction that first takes the lock of what it
  charges: SQLite's write lock (``BEGIN IMMEDIATE``), or in PostgreSQL the
  campaign rows' locks (``SELECT ... FOR UPDATE``). The budget check and the
  spend update happen under it, so concurrent requests, in one process or in
  many replicas, cannot both see the same remaining budget. What a charge may be
  is :mod:`roost.ads.money`'s rule: never more than what is left, so spend never
  exceeds the budget. A click is charged once whichever replica receives it:
  ``clicks.impression_id`` is UNIQUE and the click row and its charge commit together.
- What an acknowledged event survives is a choice (:data:`roost.ads.db.DURABILITY`); this
  class keeps the safest, ``FULL``, as its default.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roost.ads.campaign import CampaignPatch, CampaignSpec, from_micros, to_micros
from roost.ads.db import Backend, open_backend
from roost.ads.migrations import check_current, migrate_schema
from roost.ads.money import LiveState, check_campaign_money
from roost.errors import UserError

_BUMP_DAY = """
INSERT INTO daily_stats (campaign_id, day, impressions, clicks, spend_micros, pctr_sum, expected_clicks)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (campaign_id, day) DO UPDATE SET
  impressions = daily_stats.impressions + excluded.impressions,
  clicks = daily_stats.clicks + excluded.clicks,
  spend_micros = daily_stats.spend_micros + excluded.spend_micros,
  pctr_sum = daily_stats.pctr_sum + excluded.pctr_sum,
  expected_clicks = daily_stats.expected_clicks + excluded.expected_clicks
"""


def utc_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


@dataclass
class Impression:
    campaign_id: str
    creative_id: int
    user_id: str | None
    position: int
    price_micros: int  # CPC: per click; CPM: per 1000 impressions
    pctr: float
    features: dict[str, float]
    ts: float
    id: str = ""
    frequency_cap: int | None = None  # this user's impressions of the campaign per UTC day, checked again on write
    # the click model's own pCTR (before the campaign's propensity): what this impression adds to its campaign's
    # expected clicks; 0 when it was served without a click model
    expected_clicks: float = 0.0


@dataclass
class Click:
    impression_id: str
    campaign_id: str
    landing_url: str
    charged_micros: int
    duplicate: bool


class AdStore:
    """Thread-safe access to the ads database: one connection per thread, explicit transactions.

    ``target`` is a SQLite file path (brought up to date on open) or a
    ``postgresql://`` URL (whose schema ``roost ads migrate`` keeps current; a
    store refuses one that is behind, unless ``migrate=True``). ``synchronous``
    applies to SQLite only.
    """

    def __init__(
        self, target: str | Path, synchronous: str = "FULL", busy_timeout_ms: int = 30_000, migrate: bool | None = None
    ):
        self.backend: Backend = open_backend(target, synchronous, busy_timeout_ms)
        bring_up_to_date = migrate_schema if (self.backend.embedded if migrate is None else migrate) else check_current
        try:
            bring_up_to_date(self.backend)
        except BaseException:
            self.backend.close()  # a PostgreSQL pool left to the garbage collector may be collected on its own thread
            raise

    @property
    def path(self) -> str:
        """Where the rows are, for messages (a PostgreSQL URL without its password)."""
        return self.backend.describe()

    def _conn(self) -> Any:
        return self.backend.conn()

    def transaction(self):
        """One write transaction (see :mod:`roost.ads.db` for what each backend locks)."""
        return self.backend.transaction()

    def reader(self) -> Any:
        """This thread's connection, for read-only queries that live outside this module (roost.ads.listing)."""
        return self._conn()

    def ping(self) -> None:
        """Raise unless the database answers (a replica's readiness check)."""
        self._conn().execute("SELECT 1").fetchone()

    def close(self) -> None:
        self.backend.close()

    # --- campaigns -------------------------------------------------------------------------

    def add_campaigns(self, specs: Iterable[CampaignSpec], now: float | None = None) -> list[str]:
        """Insert campaigns (one transaction for all); returns their ids. Existing ids are an error.

        A few statements for the whole batch (lookups by chunks of ids, inserts with executemany), so loading
        100k campaigns into PostgreSQL is not 500k round trips.
        """
        now = time.time() if now is None else now
        specs = list(specs)
        ids = [spec.id or f"cmp_{uuid.uuid4().hex[:16]}" for spec in specs]
        with self.transaction() as db:
            taken = {cid for cid, n in Counter(ids).items() if n > 1}
            for chunk in _chunks(ids):
                taken.update(r[0] for r in db.execute(f"SELECT id FROM campaigns WHERE {_in('id', chunk)}", chunk))
            if taken:
                raise UserError(f"campaign {min(taken)!r} is already in {self.path}")
            names = list(dict.fromkeys(spec.advertiser for spec in specs))
            db.executemany(
                "INSERT INTO advertisers (name) VALUES (?) ON CONFLICT (name) DO NOTHING", [(name,) for name in names]
            )
            advertiser: dict[str, int] = {}
            for chunk in _chunks(names):
                advertiser.update(
                    (r[0], r[1])
                    for r in db.execute(f"SELECT name, id FROM advertisers WHERE {_in('name', chunk)}", chunk)
                )
            db.executemany(
                "INSERT INTO campaigns (id, advertiser_id, name, status, bid_type, bid_micros, max_bid_micros,"
                " budget_micros, daily_budget_micros, targeting, schedule, frequency_cap, brand_safety_threshold,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        cid,
                        advertiser[spec.advertiser],
                        spec.name,
                        spec.status,
                        spec.bid_type,
                        to_micros(spec.bid),
                        to_micros(spec.max_bid or spec.bid),
                        to_micros(spec.budget),
                        to_micros(spec.daily_budget) if spec.daily_budget else None,
                        spec.targeting.model_dump_json(),
                        spec.schedule.model_dump_json() if spec.schedule else None,
                        spec.frequency_cap,
                        spec.brand_safety_threshold,
                        now,
                        now,
                    )
                    for cid, spec in zip(ids, specs)
                ],
            )
            db.executemany(
                "INSERT INTO creatives (campaign_id, text, landing_url) VALUES (?, ?, ?)",
                [(cid, c.text, c.landing_url) for cid, spec in zip(ids, specs) for c in spec.creatives],
            )
        return ids

    def update_campaign(self, campaign_id: str, patch: CampaignPatch, now: float | None = None) -> None:
        """Apply a patch; KeyError for an unknown campaign, ValueError when the result breaks a money rule."""
        sets: dict[str, object] = {}
        for name, value in patch.model_dump(exclude_unset=True).items():
            if name in ("budget", "daily_budget", "bid", "max_bid"):
                sets[f"{name}_micros"] = to_micros(value) if value is not None else None
            elif name in ("targeting", "schedule"):
                sets[name] = getattr(patch, name).model_dump_json() if value is not None else None
            else:
                sets[name] = value
        now = time.time() if now is None else now
        with self.transaction() as db:
            self.backend.lock_campaigns(db, [campaign_id])
            state = self.live_states([campaign_id], utc_day(now), db).get(campaign_id)
            if state is None:
                raise KeyError(campaign_id)
            row = db.execute("SELECT bid_micros, max_bid_micros FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
            bid = sets.get("bid_micros", row["bid_micros"])
            if "bid_micros" in sets and "max_bid_micros" not in sets and row["max_bid_micros"] < bid:
                sets["max_bid_micros"] = bid  # raising the bid above the old cap moves the cap with it
            check_campaign_money(
                bid=bid,
                max_bid=sets.get("max_bid_micros", row["max_bid_micros"]),
                budget=sets.get("budget_micros", state.budget_micros),
                daily_budget=sets.get("daily_budget_micros", state.daily_budget_micros),
                spend=state.spend_micros,
                day_spend=state.day_spend_micros,
            )
            if not sets:
                return
            sets["updated_at"] = now
            cols = ", ".join(f"{k} = ?" for k in sets)
            db.execute(f"UPDATE campaigns SET {cols} WHERE id = ?", (*sets.values(), campaign_id))

    def campaign_rows(self, ids: list[str] | None = None) -> list[Any]:
        """Campaign rows joined with their advertiser name (all, or the given ids)."""
        sql = "SELECT c.*, a.name AS advertiser FROM campaigns c JOIN advertisers a ON a.id = c.advertiser_id"
        if ids is None:
            return self._conn().execute(sql + " ORDER BY c.rowid").fetchall()
        return self._conn().execute(f"{sql} WHERE {_in('c.id', ids)}", ids).fetchall()

    def creative_rows(self, campaign_ids: list[str] | None = None) -> list[Any]:
        sql = "SELECT id, campaign_id, text, landing_url FROM creatives"
        if campaign_ids is None:
            return self._conn().execute(sql + " ORDER BY id").fetchall()
        return (
            self._conn().execute(f"{sql} WHERE {_in('campaign_id', campaign_ids)} ORDER BY id", campaign_ids).fetchall()
        )

    def campaign_versions(self, since: float | None = None) -> list[tuple[str, float]]:
        """(id, updated_at) of every campaign, or of those updated after ``since`` (roost.ads.catalog_sync)."""
        if since is None:
            return [tuple(r) for r in self._conn().execute("SELECT id, updated_at FROM campaigns").fetchall()]
        return [
            tuple(r)
            for r in self._conn()
            .execute("SELECT id, updated_at FROM campaigns WHERE updated_at > ?", (since,))
            .fetchall()
        ]

    def campaign_view(self, campaign_id: str) -> dict | None:
        """The admin API's view of one campaign: its settings, creatives, spend and totals."""
        rows = self.campaign_rows([campaign_id])
        if not rows:
            return None
        r = rows[0]
        totals = (
            self._conn()
            .execute(
                "SELECT CAST(COALESCE(SUM(impressions), 0) AS BIGINT), CAST(COALESCE(SUM(clicks), 0) AS BIGINT)"
                " FROM daily_stats WHERE campaign_id = ?",
                (campaign_id,),
            )
            .fetchone()
        )
        impressions, clicks = totals[0], totals[1]
        return {
            "id": r["id"],
            "advertiser": r["advertiser"],
            "name": r["name"],
            "status": r["status"],
            "bid_type": r["bid_type"],
            "bid": from_micros(r["bid_micros"]),
            "max_bid": from_micros(r["max_bid_micros"]),
            "budget": from_micros(r["budget_micros"]),
            "daily_budget": from_micros(r["daily_budget_micros"]) if r["daily_budget_micros"] else None,
            "targeting": json.loads(r["targeting"]),
            "schedule": json.loads(r["schedule"]) if r["schedule"] else None,
            "frequency_cap": r["frequency_cap"],
            "brand_safety_threshold": r["brand_safety_threshold"],
            "creatives": [
                {"id": c["id"], "text": c["text"], "landing_url": c["landing_url"]}
                for c in self.creative_rows([campaign_id])
            ],
            "spend": from_micros(r["spend_micros"]),
            "spend_micros": r["spend_micros"],
            "impressions": impressions,
            "clicks": clicks,
            "ctr": clicks / impressions if impressions else 0.0,
        }

    # --- serving ---------------------------------------------------------------------------

    def live_states(self, ids: list[str], day: str, db: Any = None) -> dict[str, LiveState]:
        """Status, spend and today's spend of these campaigns (``db``: inside that transaction)."""
        if not ids:
            return {}
        rows = (
            (db or self._conn())
            .execute(
                "SELECT c.id, c.status, c.spend_micros, c.budget_micros, c.daily_budget_micros,"
                " COALESCE(d.spend_micros, 0) AS day_spend, c.bid_type FROM campaigns c"
                " LEFT JOIN daily_stats d ON d.campaign_id = c.id AND d.day = ?"
                f" WHERE {_in('c.id', ids)}",
                (day, *ids),
            )
            .fetchall()
        )
        return {r[0]: LiveState(*r[1:]) for r in rows}

    def _impression_counts(self, db: Any, user_id: str, day: str, ids: list[str]) -> dict[str, int]:
        """This user's impressions today of each of these campaigns (frequency caps, settled under the lock)."""
        return dict(
            db.execute(
                f"SELECT campaign_id, COUNT(*) FROM impressions WHERE user_id = ? AND day = ?"
                f" AND {_in('campaign_id', ids)} GROUP BY campaign_id",
                (user_id, day, *ids),
            ).fetchall()
        )

    def user_impressions(self, user_id: str, day: str) -> dict[str, int]:
        """Impressions per campaign this user saw on this day (for frequency caps)."""
        rows = (
            self._conn()
            .execute(
                "SELECT campaign_id, COUNT(*) FROM impressions WHERE user_id = ? AND day = ? GROUP BY campaign_id",
                (user_id, day),
            )
            .fetchall()
        )
        return {r[0]: r[1] for r in rows}

    def record_impressions(
        self, impressions: list[Impression], settled: dict[str, dict[str, LiveState]] | None = None
    ) -> list[Impression]:
        """Log served ads and charge CPM ones, re-checking budget under the write lock.

        Returns the impressions that were recorded (with ids); an ad whose campaign
        ran out of budget or was paused since the decision is dropped, not shown,
        and so is one that would take its user past the campaign's frequency cap:
        two decisions for the same user at once both read the count before either
        wrote, so the cap is settled here, under the write lock, from the
        impressions table (which is why it holds across restarts too).

        ``settled``, when given, receives each campaign's live state as committed (UTC day -> campaign id ->
        state, after this write's charges): what a read right after the commit would give.
        """
        kept, rows, spends, bumps = [], [], [], []
        with self.transaction() as db:
            # one read for all of a decision's campaigns, under their locks, kept current as
            # charges land below; the writes go out together at the end (one round trip each in PostgreSQL)
            all_ids = list(dict.fromkeys(i.campaign_id for i in impressions))
            self.backend.lock_campaigns(db, all_ids)
            states: dict[str, dict[str, LiveState]] = {}
            seen: dict[tuple[str, str], dict[str, int]] = {}  # (user, day) -> campaign -> impressions today
            for imp in impressions:
                day = utc_day(imp.ts)
                if day not in states:
                    states[day] = self.live_states(all_ids, day, db)
                state = states[day].get(imp.campaign_id)
                if state is None or state.status != "active" or not state.has_budget():
                    continue
                if imp.frequency_cap is not None and imp.user_id is not None:
                    counts = seen.get((imp.user_id, day))
                    if counts is None:
                        counts = seen[imp.user_id, day] = self._impression_counts(db, imp.user_id, day, all_ids)
                    if counts.get(imp.campaign_id, 0) >= imp.frequency_cap:
                        continue
                    counts[imp.campaign_id] = counts.get(imp.campaign_id, 0) + 1
                charge = state.charge(math.ceil(imp.price_micros / 1000)) if state.bid_type == "cpm" else 0
                imp.id = uuid.uuid4().hex
                rows.append(
                    (
                        imp.id,
                        imp.campaign_id,
                        imp.creative_id,
                        imp.user_id,
                        imp.ts,
                        day,
                        imp.position,
                        imp.price_micros,
                        charge,
                        imp.pctr,
                        json.dumps(imp.features),
                    )
                )
                if charge:
                    spends.append((charge, imp.campaign_id))
                bumps.append((imp.campaign_id, day, 1, 0, charge, imp.pctr, imp.expected_clicks))
                kept.append(imp)
            if rows:
                db.executemany(
                    "INSERT INTO impressions (id, campaign_id, creative_id, user_id, ts, day, position, price_micros,"
                    " charged_micros, pctr, features) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                db.executemany(_BUMP_DAY, bumps)
            if spends:
                db.executemany("UPDATE campaigns SET spend_micros = spend_micros + ? WHERE id = ?", spends)
        if settled is not None:
            settled.update(states)
        return kept

    def record_click(self, impression_id: str, ts: float | None = None) -> Click | None:
        """Record a click once and charge a CPC campaign its auction price.

        None when the impression is unknown. A repeated click is recorded once and
        charged once (``clicks.impression_id`` is UNIQUE). The charge is capped at
        what is left of the budget and of today's budget (``roost.ads.money``), so
        spend never exceeds either.
        """
        ts = time.time() if ts is None else ts
        day = utc_day(ts)
        with self.transaction() as db:
            imp = db.execute(
                "SELECT i.campaign_id, i.price_micros, c.bid_type, r.landing_url FROM impressions i"
                " JOIN campaigns c ON c.id = i.campaign_id JOIN creatives r ON r.id = i.creative_id"
                " WHERE i.id = ?",
                (impression_id,),
            ).fetchone()
            if imp is None:
                return None
            cid = imp["campaign_id"]
            self.backend.lock_campaigns(db, [cid])
            state = self.live_states([cid], day, db)[cid]  # read under the campaign's lock
            cur = db.execute(
                "INSERT INTO clicks (impression_id, campaign_id, ts, day, charged_micros) VALUES (?, ?, ?, ?, 0)"
                " ON CONFLICT (impression_id) DO NOTHING",
                (impression_id, cid, ts, day),
            )
            if cur.rowcount == 0:
                return Click(impression_id, cid, imp["landing_url"], 0, duplicate=True)
            charge = state.charge(imp["price_micros"]) if imp["bid_type"] == "cpc" else 0
            if charge:
                db.execute("UPDATE clicks SET charged_micros = ? WHERE impression_id = ?", (charge, impression_id))
                db.execute("UPDATE campaigns SET spend_micros = spend_micros + ? WHERE id = ?", (charge, cid))
            db.execute(_BUMP_DAY, (cid, day, 0, 1, charge, 0.0, 0.0))
        return Click(impression_id, cid, imp["landing_url"], charge, duplicate=False)

    # --- reports and training data ---------------------------------------------------------

    def report(self, start: str | None = None, end: str | None = None, campaign_id: str | None = None) -> list[dict]:
        """Impressions, clicks, CTR and spend per campaign and UTC day (days as YYYY-MM-DD, inclusive)."""
        where, args = [], []
        for cond, value in (("day >= ?", start), ("day <= ?", end), ("campaign_id = ?", campaign_id)):
            if value is not None:
                where.append(cond)
                args.append(value)
        sql = "SELECT campaign_id, day, impressions, clicks, spend_micros FROM daily_stats"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._conn().execute(sql + " ORDER BY day, campaign_id", args).fetchall()
        return [
            {
                "campaign_id": r[0],
                "day": r[1],
                "impressions": r[2],
                "clicks": r[3],
                "ctr": r[3] / r[2] if r[2] else 0.0,
                "spend": from_micros(r[4]),
                "spend_micros": r[4],
            }
            for r in rows
        ]

    def events(self) -> list[Any]:
        """Every impression with its logged features and whether it was clicked, oldest first."""
        return (
            self._conn()
            .execute(
                "SELECT i.id, i.campaign_id, i.ts, i.day, i.position, i.pctr, i.features,"
                " (c.id IS NOT NULL) AS clicked FROM impressions i LEFT JOIN clicks c ON c.impression_id = i.id"
                " ORDER BY i.ts, i.rowid"
            )
            .fetchall()
        )

    def click_counts(self) -> dict[str, tuple[int, int, float]]:
        """campaign id -> (impressions, clicks, expected clicks), all time."""
        rows = (
            self._conn()
            .execute(
                "SELECT campaign_id, CAST(SUM(impressions) AS BIGINT), CAST(SUM(clicks) AS BIGINT),"
                " SUM(expected_clicks) FROM daily_stats GROUP BY campaign_id"
            )
            .fetchall()
        )
        return {r[0]: (r[1], r[2], float(r[3])) for r in rows}

    def restate_expected_clicks(self, expected: dict[tuple[str, str], float]) -> None:
        """Set every day's expected clicks of each campaign to ``expected[(campaign id, day)]`` (0 where absent):
        what a new click model expects of the impressions already logged (:func:`roost.ads.pctr.expected_clicks`).

        Impressions a running server logs between the read of the log and this write lose their expected clicks
        (seconds' worth, nudging those campaigns' propensities up a little); a server picks up the new model,
        and these sums, when it restarts."""
        with self.transaction() as db:
            db.execute("UPDATE daily_stats SET expected_clicks = 0")
            db.executemany(
                "UPDATE daily_stats SET expected_clicks = ? WHERE campaign_id = ? AND day = ?",
                [(float(e), cid, day) for (cid, day), e in expected.items()],
            )

    # --- creative embedding cache ----------------------------------------------------------

    def cached_embeddings(self, space: str) -> dict[int, bytes]:
        rows = self._conn().execute("SELECT creative_id, vector FROM creative_embeddings WHERE space = ?", (space,))
        return {r[0]: r[1] for r in rows}

    def save_embeddings(self, space: str, items: list[tuple[int, bytes]]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO creative_embeddings (creative_id, space, vector) VALUES (?, ?, ?)"
                " ON CONFLICT (creative_id, space) DO UPDATE SET vector = excluded.vector",
                [(cid, space, vec) for cid, vec in items],
            )


def _in(column: str, values: list) -> str:
    """``column IN (?, ...)``: a list of parameters, which both databases plan well (PostgreSQL's
    ``= ANY(array)`` measured 4x slower for the 300 candidates of a decision: its generic plan scans)."""
    return f"{column} IN ({', '.join('?' * len(values))})"


def _chunks(items: list, size: int = 500) -> Iterable[list]:
    """``items`` in lists of at most ``size`` (an IN list per chunk stays a modest statement)."""
    return (items[i : i + size] for i in range(0, len(items), size))
