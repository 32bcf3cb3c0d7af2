"""Campaigns' live state (status, budget, spend) for eligibility, read through a short-lived cache.

Why a cache: eligibility and pacing look at the live state of every candidate
of a decision (a hundred and more at 100k campaigns), and reading them from the
database was the largest share of a decision's time (an ``IN`` list of that
many ids per decision; PostgreSQL adds a round trip and its planning).

Why it is safe for money: the cache only decides which campaigns *enter* the
auction. Everything money depends on is settled again under the database's lock
when the impressions are written (:meth:`AdStore.record_impressions`: status,
budget, today's budget and frequency caps) and when a click is charged (the
charge capped at what is left). A stale entry can at worst let a campaign that
ran out a moment ago win a slot that is then dropped, not shown; it never
charges a cent more.

What a decision sees: this process's own writes at once (the service puts the
states its impressions' write settled, :meth:`LiveStates.put`, and drops the entries
of campaigns it edits, :meth:`LiveStates.forget`), and other replicas' writes within
``max_age_s`` (pausing a campaign through another replica, spend it made there):
entries older than that are read again. Pacing reads today's spend through the
same cache, so its throttle lags another replica's spend by at most as long.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import numpy as np

from roost.ads.money import LiveState
from roost.ads.store import AdStore

_UNKNOWN = (False, 0.0, float("nan"))  # a campaign the database does not have: it never enters


def summary(state: LiveState) -> tuple[bool, float, float]:
    """(may it enter: active with budget left, today's spend, daily budget or NaN): what a decision reads."""
    daily = float("nan") if state.daily_budget_micros is None else float(state.daily_budget_micros)
    return state.status == "active" and state.has_budget(), float(state.day_spend_micros), daily


class LiveStates:
    """campaign id -> (LiveState, when read, its summary); one day's worth, dropped whole when the UTC day turns."""

    def __init__(self, store: AdStore, max_age_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.store, self.max_age_s, self.clock = store, max_age_s, clock
        self._lock = threading.Lock()
        self._day = ""
        self._entries: dict[str, tuple[LiveState, float, tuple[bool, float, float]]] = {}
        self._forgotten = 0  # bumped by forget: a read that overlapped a write is not cached

    def get(self, ids: list[str], day: str) -> dict[str, LiveState]:
        """The live state of these campaigns (unknown ids are left out), reading only what is missing or old."""
        return {cid: entry[0] for cid, entry in self._entries_for(ids, day).items()}

    def arrays(self, ids: list[str], day: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per id: may it enter an auction (bool), today's spend, daily budget (NaN: none), as numpy arrays."""
        entries = self._entries_for(ids, day)
        rows = [entries[cid][2] if cid in entries else _UNKNOWN for cid in ids]
        enters, day_spend, daily = zip(*rows) if rows else ((), (), ())
        return np.array(enters, bool), np.array(day_spend, np.float64), np.array(daily, np.float64)

    def _entries_for(self, ids: list[str], day: str) -> dict[str, tuple[LiveState, float, tuple[bool, float, float]]]:
        now = self.clock()
        oldest = now - self.max_age_s
        with self._lock:
            if day != self._day:
                self._day, self._entries = day, {}
            entries, generation = self._entries, self._forgotten
            found = {}
            missing: list[str] = []
            for cid in ids:
                entry = entries.get(cid)
                if entry is not None and entry[1] > oldest:  # younger than max_age_s: with 0, never
                    found[cid] = entry
                else:
                    missing.append(cid)
        if missing:
            fresh = {cid: (state, now, summary(state)) for cid, state in self.store.live_states(missing, day).items()}
            with self._lock:
                if day == self._day and generation == self._forgotten:
                    self._entries.update(fresh)
            found.update(fresh)
        return found

    def put(self, day: str, states: dict[str, LiveState]) -> None:
        """Entries for states this process just settled under the database's lock (its own charges, an ad it
        dropped): as fresh as a read, so the next decision does not read them again (a CPM campaign is charged
        at every impression it wins, and would otherwise be read again after each)."""
        now = self.clock()
        with self._lock:
            self._forgotten += 1  # a read that overlapped this write must not replace these
            if day == self._day:
                self._entries.update((cid, (state, now, summary(state))) for cid, state in states.items())

    def forget(self, ids: Iterable[str]) -> None:
        """Drop these campaigns' entries: this process just changed them (a charge, an edit), read them again."""
        with self._lock:
            self._forgotten += 1
            for cid in ids:
                self._entries.pop(cid, None)
