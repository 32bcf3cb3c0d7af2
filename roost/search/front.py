"""The front of a partitioned index: fan a query out to every partition, merge, rank once.

Lexical scores use the sums of every partition's term counts (:mod:`roost.search.dfs`),
as Elasticsearch's DFS query-then-fetch does. The front keeps those sums in a table
(:mod:`roost.search.term_table`), so a query normally takes one round: every
partition's candidates scored with the sums; a query with a term the table does not
know first asks every partition for its counts. The front embeds the query once,
merges the candidate lists and ranks them with the same code as one index
(:func:`roost.search.engine.rank`), so N partitions answer as one index would.

Faults: each round waits at most ``deadline_s`` for the partitions. A partition that
is down, errs or is late is left out and the answer is marked partial, naming it;
a partition with replicas tries the next replica first. Writes go to every replica
of the post's partition and are acknowledged when one has applied them; with a
write log (``log_path``) each write is kept there first, and a replica that missed
writes (down, or restarted) is replayed from the log before it serves reads again.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import select
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from roost.search.dfs import TermStats, merge
from roost.search.docstore import Post
from roost.search.engine import Candidates, Hit, QueryError, SearchAnswer, SearchModel, SearchRequest, rank
from roost.search.lexical import LexicalIndex
from roost.search.partition import partition_of
from roost.search.ranking import RankingConfig
from roost.search.replica import PartitionError, Pending
from roost.search.term_table import TermTable, Vocabulary
from roost.search.wire import post_from_dict, post_to_dict

log = logging.getLogger(__name__)


class Partition(Protocol):
    """One replica of one partition, in this process (:class:`SearchIndex`) or over HTTP."""

    def term_stats(self, terms: list[str]) -> TermStats: ...

    def vocabulary(self, limit: int) -> Vocabulary: ...

    def candidates(
        self, req: SearchRequest, qvec: np.ndarray | None, stats: TermStats | None, depth: int | None = None
    ) -> Candidates: ...

    def apply(self, seq: int | None, op: str, payload: dict) -> dict: ...

    def applied(self) -> int: ...

    def has_author(self, author_id: str) -> bool: ...

    def close(self) -> None: ...


@dataclass
class FrontConfig:
    deadline_s: float = 2.0  # per round of a query: partitions not back by then are left out (partial answer)
    stats_ttl_s: float = 60.0  # the term table is reloaded this often (other fronts' writes, merges reach it then)
    vocabulary_limit: int = 100_000  # terms per field and partition in the table; rarer ones are asked for
    first_share: float = 1.5  # each partition is first asked for this times its share (1/P) of each list's top n


class WriteLog:
    """Every write the front took, by sequence number: what a lagging replica is replayed from."""

    def __init__(self, path: str | Path):
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS writes (seq INTEGER PRIMARY KEY, part INTEGER NOT NULL, "
            "op TEXT NOT NULL, payload TEXT NOT NULL)"
        )
        self._lock = threading.Lock()

    def append(self, part: int, op: str, payload: dict) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO writes (part, op, payload) VALUES (?,?,?)", (part, op, json.dumps(payload))
            )
            return int(cur.lastrowid)

    def after(self, part: int, seq: int) -> list[tuple[int, str, dict]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, op, payload FROM writes WHERE part = ? AND seq > ? ORDER BY seq", (part, seq)
            ).fetchall()
        return [(s, op, json.loads(p)) for s, op, p in rows]

    def close(self) -> None:
        self._db.close()


class PartitionedIndex:
    """N partitions (each a list of replicas) answering as one index."""

    def __init__(
        self,
        partitions: list[list[Partition]],
        model: SearchModel | None = None,
        *,
        ranking: RankingConfig | None = None,
        config: FrontConfig | None = None,
        log_path: str | Path | None = None,
    ):
        if not partitions or any(not replicas for replicas in partitions):
            raise ValueError("a partitioned index needs at least one replica of every partition")
        self.partitions = partitions
        self.model = model
        self.ranking = ranking or (model.ranking if model is not None else RankingConfig())
        self.config = config or FrontConfig()
        self.log = WriteLog(log_path) if log_path is not None else None
        self._stale: set[tuple[int, int]] = set()  # (partition, replica) that missed writes: no reads until replayed
        self._turn = itertools.count()
        self._pool = ThreadPoolExecutor(max_workers=4 * len(partitions), thread_name_prefix="fanout")
        self._terms = TermTable(self._vocabularies, self.config.stats_ttl_s)
        self._write_lock = threading.RLock()  # writes and replays, one at a time, in the log's order
        if self.log is not None:
            for i, replicas in enumerate(partitions):
                for r in range(len(replicas)):
                    self._stale.add((i, r))
                    self._catch_up(i, r)
        if len(partitions) > 1:  # one partition's own counts are the sums: no table (search_partial)
            self._terms.reload()  # at most deadline_s; a partition down now leaves the table to a later load

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for replicas in self.partitions:
            for replica in replicas:
                replica.close()  # an index in this process releases tantivy's writer lock
        if self.log is not None:
            self.log.close()

    # ---- queries ------------------------------------------------------------------------
    def search(self, req: SearchRequest) -> list[Hit]:
        return self.search_partial(req).hits

    def search_partial(self, req: SearchRequest) -> SearchAnswer:
        req.validate()
        if req.mode != "lexical" and self.model is None:
            raise QueryError("mode", f"mode={req.mode} needs the model, which this server has not loaded")
        qvec = self.model.queries([req.q])[0] if req.mode != "lexical" else None
        stats, missing = None, set()
        if req.mode in ("lexical", "hybrid") and len(self.partitions) > 1:  # one partition's counts are all
            terms = LexicalIndex.query_terms(req.q)
            stats = self._terms.lookup(terms)
            if stats is None:  # a term the table does not know: ask every partition first
                parts, missing = self._fan_out("term_stats", terms)
                stats = merge(list(parts.values()))
                if not missing:  # a sum without every partition is this query's only
                    self._terms.store(stats)
        found, late = self._candidates(req, qvec, stats)
        missing |= late
        hits = rank(req, self._merge(found, req), self.ranking, self.model)
        return SearchAnswer(hits, sorted(missing), max((c.took_ms for c in found.values()), default=0.0))

    def _candidates(
        self, req: SearchRequest, qvec: np.ndarray | None, stats: TermStats | None
    ) -> tuple[dict[int, Candidates], set[int]]:
        """Every partition's candidates, enough for the top n of each list over all partitions.

        The ranking fuses each list's top n (``ranking.candidates``) over all posts. A partition holds about
        n/P of them, so each is first asked for ``first_share`` times that; a partition whose list was cut
        there with its last score still within the top n so far may hold more, and is asked again for all n
        (rare: with 4 partitions, more than 1.5 times its share of the top 50 in one partition)."""
        n, size = max(self.ranking.candidates, req.k), len(self.partitions)
        depth = n if size == 1 else min(n, math.ceil(self.config.first_share * n / size))
        found, missing = self._fan_out("candidates", req, qvec, stats, depth)
        short = _cut_short(found, n) if depth < n else set()
        if short:
            more, late = self._fan_out("candidates", req, qvec, stats, n, only=short)
            found.update(more)
            missing |= late  # its first answer stays in, but may lack some of the top n: the answer is partial
        return found, missing

    def _merge(self, found: dict[int, Candidates], req: SearchRequest) -> Candidates:
        """One candidate set: keys made unique across partitions, each list cut back to the ranking's depth."""
        n = max(self.ranking.candidates, req.k)
        size = len(self.partitions)
        lists: dict[str, list[tuple[int, float]]] = {}
        posts: dict[int, Post] = {}
        quality: dict[str, float] = {}
        for i, c in found.items():
            for name, ranked in c.lists.items():
                lists.setdefault(name, []).extend((k * size + i, s) for k, s in ranked)
            posts.update((k * size + i, p) for k, p in c.posts.items())
            quality.update(c.quality)
        for ranked in lists.values():
            ranked.sort(key=lambda ks: (-ks[1], ks[0]))
            del ranked[n:]
        return Candidates(
            lists,
            posts,
            any(c.matches for c in found.values()),
            max((c.newest for c in found.values()), default=0.0),
            quality,
        )

    def _vocabularies(self) -> list[Vocabulary] | None:
        """Every partition's most frequent terms, for the term table; None when one did not answer."""
        found, missing = self._fan_out("vocabulary", self.config.vocabulary_limit)
        return None if missing else [found[i] for i in range(len(self.partitions))]

    def _fan_out(self, call: str, *args, only: set[int] | None = None) -> tuple[dict[int, object], set[int]]:
        """``call(*args)`` on one replica of every partition (or those in ``only``) at once; (answers by
        partition, missing).

        A replica over HTTP is sent the call from this thread, all of them before any answer is read, so a
        query hands nothing to other threads (each hand-off was a wake-up to wait for on a busy machine). A
        replica in this process, and a retry on another replica, run in the pool."""
        deadline = time.monotonic() + self.config.deadline_s
        sent, pooled, encoded = {}, {}, None
        for i, replicas in enumerate(self.partitions):
            if only is not None and i not in only:
                continue
            r = next(self._turn) % len(replicas)
            if (i, r) in self._stale or not hasattr(replicas[r], "send"):
                pooled[i] = self._pool.submit(self._ask, i, call, args, r)
                continue
            try:
                encoded = encoded or replicas[r].encode(call, *args)  # the same bytes to every partition
                sent[i] = (r, replicas[r].send(encoded))
            except PartitionError as e:
                pooled[i] = self._pool.submit(self._ask, i, call, args, r + 1, f"replica {r}: {e}")
        answers, missing = {}, set()
        try:
            while sent:
                i = _first_ready(sent, deadline)
                r, pending = sent.pop(i)
                try:
                    answers[i] = pending.result(max(deadline - time.monotonic(), 0.001))
                except PartitionError as e:
                    if len(self.partitions[i]) > 1:
                        pooled[i] = self._pool.submit(self._ask, i, call, args, r + 1, f"replica {r}: {e}")
                    else:
                        log.warning("search: partition %d left out: %s", i, e)
                        missing.add(i)
        finally:  # a QueryError (a bad query is bad everywhere) leaves answers unread: their connections go
            for _, pending in sent.values():
                pending.abandon()
        wait(pooled.values(), timeout=max(deadline - time.monotonic(), 0.0))
        for i, fut in pooled.items():
            if not fut.done():
                fut.cancel()
                log.warning("search: partition %d left out: no answer within %.2f s", i, self.config.deadline_s)
                missing.add(i)
                continue
            try:
                answers[i] = fut.result()
            except PartitionError as e:
                log.warning("search: partition %d left out: %s", i, e)
                missing.add(i)
        return answers, missing  # a QueryError was raised above: the client's 400

    def _ask(self, i: int, call: str, args: tuple, start: int | None = None, failed: str | None = None):
        """Try partition ``i``'s replicas that are in sync, from ``start`` (a rotating one by default); after
        ``failed`` (the replica before ``start`` failed so), the others."""
        replicas = self.partitions[i]
        start = next(self._turn) if start is None else start
        errors = [failed] if failed else []
        for j in range(len(replicas) - bool(failed)):
            r = (start + j) % len(replicas)
            if (i, r) in self._stale and not self._catch_up(i, r):
                errors.append(f"replica {r} is behind")
                continue
            try:
                return getattr(replicas[r], call)(*args)
            except PartitionError as e:
                errors.append(f"replica {r}: {e}")
        raise PartitionError(f"partition {i}: " + "; ".join(errors))

    def has_author(self, author_id: str) -> bool:
        for i in range(len(self.partitions)):
            try:
                if self._ask(i, "has_author", (author_id,)):
                    return True
            except PartitionError:
                continue
        return False

    def can_add(self) -> bool:
        return True  # each partition embeds the posts it is given, with its own model

    # ---- writes -------------------------------------------------------------------------
    def add(self, posts: list[Post]) -> list[Post]:
        """Add posts to their partitions; each is searchable when this returns."""
        by_part: dict[int, list[Post]] = {}
        for p in posts:
            by_part.setdefault(partition_of(p.id, len(self.partitions)), []).append(p)
        added: list[Post] = []
        for i, group in by_part.items():
            result = self._write(i, "add", {"posts": [post_to_dict(p) for p in group]})
            added += [post_from_dict(d) for d in result["added"]]
        return added

    def delete(self, post_id: str) -> bool:
        """Remove a post from its partition in every mode; False when no live post has this id."""
        return bool(self._write(partition_of(post_id, len(self.partitions)), "delete", {"id": post_id})["deleted"])

    def _write(self, i: int, op: str, payload: dict) -> dict:
        """Apply a write on every replica of partition ``i``; acknowledged when one of them applied it."""
        with self._write_lock:  # one write at a time keeps the log's order the order replicas apply
            seq = self.log.append(i, op, payload) if self.log is not None else None
            result, errors = None, []
            for r, replica in enumerate(self.partitions[i]):
                if (i, r) in self._stale and not self._catch_up(i, r, upto=seq):
                    errors.append(f"replica {r} is behind")
                    continue
                try:
                    answer = replica.apply(seq, op, payload)
                    result = result or answer
                except PartitionError as e:
                    errors.append(f"replica {r}: {e}")
                    if self.log is not None:  # it catches up from the log; without one it would just miss it
                        self._stale.add((i, r))
            if result is None:
                self._terms.invalidate()  # some replica may have applied it before failing
                raise PartitionError(f"partition {i} applied no replica of the write: " + "; ".join(errors))
            if op == "add" and result.get("stats") is not None:
                self._terms.added(TermStats.from_dict(result["stats"]))
            # a delete leaves tantivy's counts as they were until its segment is merged; a reload sees the merge
            return result

    def _catch_up(self, i: int, r: int, upto: int | None = None) -> bool:
        """Replay the log to replica ``r`` of partition ``i`` (entries before ``upto``); True when in sync."""
        if self.log is None:
            return False
        replica = self.partitions[i][r]
        with self._write_lock:
            try:
                for seq, op, payload in self.log.after(i, replica.applied()):
                    if upto is not None and seq >= upto:
                        break
                    replica.apply(seq, op, payload)
                    self._terms.invalidate()
            except PartitionError as e:
                log.info("search: partition %d replica %d still behind: %s", i, r, e)
                return False
            self._stale.discard((i, r))
            return True


def _first_ready(sent: dict[int, tuple[int, Pending]], deadline: float) -> int:
    """The partition whose answer arrives first (any of them at the deadline), so each answer is read and decoded
    while the slower partitions still work, not all after the slowest."""
    if len(sent) > 1:
        poll, by_fd = select.poll(), {}
        for i, (_, pending) in sent.items():
            fd = pending.fileno()
            if fd < 0:
                return i  # closed: reading it fails at once
            poll.register(fd, select.POLLIN)
            by_fd[fd] = i
        ready = poll.poll(max(deadline - time.monotonic(), 0.0) * 1000)
        if ready:
            return by_fd[ready[0][0]]
    return next(iter(sent))


def _cut_short(found: dict[int, Candidates], n: int) -> set[int]:
    """Partitions whose list was cut at the depth asked while what lies past the cut could still be in the top
    ``n`` of all partitions' lists: its last item ranks above the n-th. Lists merge by score, then key, then
    partition (:meth:`PartitionedIndex._merge`), and past its cut a partition has only items ranking below its
    last one (a lower score, or the same score and a larger key), so ties need no second ask."""
    short = set()
    for name in {name for c in found.values() for name in c.lists}:
        merged = sorted((-s, k, i) for i, c in found.items() for k, s in c.lists.get(name, []))
        nth = merged[n - 1] if len(merged) >= n else None
        for i, c in found.items():
            ranked = c.lists.get(name, [])
            if c.truncated.get(name) and (nth is None or not ranked or (-ranked[-1][1], ranked[-1][0], i) < nth):
                short.add(i)
    return short
