"""The front's copy of the partitions' summed term counts, so that a query takes one round, not two.

DFS query-then-fetch (:mod:`roost.search.dfs`) asks every partition for its counts
of a query's terms before it asks for candidates: a second round trip to every
partition for each query, which on loopback cost about as much as the first.
Instead the front keeps the sums itself. Each partition sends the counts of its
``limit`` most frequent terms per field (tantivy lists a field's dictionary by
document frequency), at start and again every ``ttl_s``, loaded in the background.

A term's sum is known when every partition's count of it is: the partition sent
its whole dictionary (so a term it did not send has no posts there), or it sent
this term. A query with a term not known asks the partitions for it first (the old
first round), and the sum is kept until the next reload.

Writes through this front keep the table exact: a partition answers an added post
with its counts (:func:`counts_of`), which are added here. A delete changes
nothing at once: tantivy counts a deleted post until its segment is merged, at a
time the front cannot see, and the next reload picks the merge up. With several
fronts, another front's writes reach this table at its next reload too. A replay
of missed writes to a replica empties the table until it is reloaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from roost.search.dfs import FIELDS, TermStats

log = logging.getLogger(__name__)


@dataclass
class Vocabulary:
    """One partition's counts of its most frequent terms, and whether that is its whole dictionary."""

    stats: TermStats
    complete: bool

    def to_dict(self) -> dict:
        return {"stats": self.stats.to_dict(), "complete": self.complete}

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        return cls(TermStats.from_dict(d["stats"]), bool(d["complete"]))


def counts_of(fields: list[dict[str, list[str]]]) -> TermStats:
    """What posts indexed with these tokens (per field) add to an index's counts."""
    df: dict[str, Counter] = {f: Counter() for f in FIELDS}
    tokens = dict.fromkeys(FIELDS, 0.0)
    for post in fields:
        for f in FIELDS:
            toks = post.get(f, [])
            tokens[f] += len(toks)
            df[f].update(set(toks))
    return TermStats(docs=len(fields), tokens=tokens, df={f: dict(c) for f, c in df.items()})


@dataclass
class _Sums:
    """The summed counts as loaded, plus what queries and writes added since."""

    docs: int = 0
    tokens: dict[str, float] = field(default_factory=dict)
    df: dict[str, dict[str, int]] = field(default_factory=lambda: {f: {} for f in FIELDS})
    listed: dict[str, Counter] = field(default_factory=lambda: {f: Counter() for f in FIELDS})
    partial: int = 0  # partitions that sent only part of their dictionary
    asked: dict[str, set[str]] = field(default_factory=lambda: {f: set() for f in FIELDS})  # sums from a first round
    loaded: bool = False

    def known(self, f: str, t: str) -> bool:
        return self.loaded and (self.partial == 0 or self.listed[f][t] == self.partial or t in self.asked[f])


class TermTable:
    """Summed term counts for the front; ``load()`` returns every partition's :class:`Vocabulary`, or None
    when one did not answer."""

    def __init__(self, load: Callable[[], list[Vocabulary] | None], ttl_s: float):
        self._load = load
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._sums = _Sums()
        self._loaded_at = -float("inf")
        self._loading = False
        self._writes = 0  # writes seen: a load that overlapped one may have missed it, and is not installed

    # ---- queries ------------------------------------------------------------------------
    def lookup(self, terms: list[str]) -> TermStats | None:
        """The summed counts for ``terms``; None when the table does not know every one of them."""
        self._refresh_if_old()
        with self._lock:
            s = self._sums
            if not s.loaded or not all(s.known(f, t) for t in terms for f in FIELDS):
                return None
            return TermStats(s.docs, dict(s.tokens), {f: {t: s.df[f].get(t, 0) for t in terms} for f in FIELDS})

    def store(self, asked: TermStats) -> None:
        """Every partition's summed counts of some terms (a first round): kept until the next reload."""
        with self._lock:
            s = self._sums
            if not s.loaded:
                s.docs, s.tokens, s.loaded = asked.docs, dict(asked.tokens), True
                s.partial = max(s.partial, 1)  # nothing listed: a term is known only once asked
            for f, terms in asked.df.items():
                s.df[f].update(terms)
                s.asked[f].update(terms)

    # ---- writes -------------------------------------------------------------------------
    def added(self, delta: TermStats) -> None:
        """Posts were added through this front: ``delta`` is what they add to the counts."""
        with self._lock:
            self._writes += 1
            s = self._sums
            if not s.loaded:
                return
            s.docs += delta.docs
            for f, n in delta.tokens.items():
                s.tokens[f] = s.tokens.get(f, 0.0) + n
            for f, terms in delta.df.items():
                for t, n in terms.items():
                    if s.known(f, t):
                        s.df[f][t] = s.df[f].get(t, 0) + n

    def invalidate(self) -> None:
        """The counts changed in a way the front cannot follow (a replay, a failed write): forget them, reload."""
        with self._lock:
            self._writes += 1
            self._sums = _Sums()
            self._loaded_at = -float("inf")

    # ---- loading ------------------------------------------------------------------------
    def reload(self) -> None:
        """Load every partition's counts now (the front does at start; later loads run in the background)."""
        with self._lock:
            self._loading = True
            writes = self._writes
        self._reload(writes)

    def _refresh_if_old(self) -> None:
        with self._lock:
            if self._loading or time.monotonic() - self._loaded_at < self.ttl_s:
                return
            self._loading = True
            writes = self._writes
        threading.Thread(target=self._reload, args=(writes,), name="term-table", daemon=True).start()

    def _reload(self, writes: int) -> None:
        started = time.monotonic()
        try:
            parts = self._load()
        except Exception:  # a loader failure must not stop queries: they fall back to asking first
            log.exception("search: loading the partitions' term counts failed")
            parts = None
        with self._lock:
            self._loading = False
            self._loaded_at = started  # after a failure too: retried after ttl_s, not on every query
            if parts is None or writes != self._writes:
                return  # a partition missing, or a write it may have missed: keep what we have
            self._sums = _summed(parts)


def _summed(parts: list[Vocabulary]) -> _Sums:
    s = _Sums(loaded=True)
    for v in parts:
        s.docs += v.stats.docs
        for f, n in v.stats.tokens.items():
            s.tokens[f] = s.tokens.get(f, 0.0) + n
        s.partial += not v.complete
        for f in FIELDS:
            into, listed = s.df[f], s.listed[f]
            for t, n in v.stats.df.get(f, {}).items():
                into[t] = into.get(t, 0) + n
                if not v.complete:
                    listed[t] += 1
    return s
