"""Exact and near-duplicate detection, persisted across ingests.

The stored state is three sets of 64-bit hashes: post ids, normalized texts,
and LSH band keys of MinHash signatures (a post is a near duplicate when it
shares any band with an earlier post, which is how datasketch's MinHashLSH
answers a query). They are kept in numpy hash tables rather than in
datasketch's dict-of-lists index: at a million posts that index needs ~4 GiB
and ~40 us a post (measured), these ~12 bytes a key and a vectorised lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KEEP, DUP_ID, DUP_TEXT, NEAR_DUP = 0, 1, 2, 3


class HashSet:
    """A set of uint64 hashes: an open-addressing (linear probing) table in one numpy array.

    Lookups and inserts are vectorised over a whole batch: each round probes
    one slot for every key still unresolved, so a batch costs a few passes of
    random reads (one cache miss a key) instead of a binary search per key.
    Slot value 0 means empty, so a key of 0 is stored as 1.
    """

    MAX_LOAD = 0.7

    def __init__(self, keys: np.ndarray | None = None, capacity: int = 1 << 12):
        self.table = np.zeros(capacity, dtype=np.uint64)
        self.n = 0
        if keys is not None:
            self.add(keys)

    def __len__(self) -> int:
        return self.n

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        bits = len(self.table).bit_length() - 1
        with np.errstate(over="ignore"):
            return ((keys * _GOLDEN) >> np.uint64(64 - bits)).astype(np.int64)

    def contains(self, q: np.ndarray) -> np.ndarray:
        """Membership of each key, in ``q``'s shape."""
        shape = np.shape(q)
        q = np.maximum(np.asarray(q, dtype=np.uint64).ravel(), _ONE)
        found = np.zeros(len(q), dtype=bool)
        slot, todo, mask = self._slots(q), np.arange(len(q)), len(self.table) - 1
        while len(todo) > _TAIL:
            v = self.table[slot[todo]]
            hit = v == q[todo]
            found[todo[hit]] = True
            todo = todo[~hit & (v != 0)]
            slot[todo] = (slot[todo] + 1) & mask
        table = self.table
        for i in todo.tolist():  # the few long probe chains: a Python loop beats numpy's per-call cost
            s, key = int(slot[i]), q[i]
            while table[s] != 0 and table[s] != key:
                s = (s + 1) & mask
            found[i] = table[s] == key
        return found.reshape(shape)

    def add(self, keys: np.ndarray, new: bool = False) -> None:
        """Insert keys; ``new=True`` promises they are unique and absent (judge knows) and skips the checks."""
        keys = np.maximum(np.asarray(keys, dtype=np.uint64).ravel(), _ONE)
        if not new:
            keys = np.unique(keys)
            keys = keys[~self.contains(keys)]
        if (self.n + len(keys)) > self.MAX_LOAD * len(self.table):
            old = self.table[self.table != 0]
            cap = len(self.table)
            while (self.n + len(keys)) > self.MAX_LOAD * cap:
                cap *= 2
            self.table = np.zeros(cap, dtype=np.uint64)
            self._insert(old)
        self._insert(keys)
        self.n += len(keys)

    def _insert(self, keys: np.ndarray) -> None:
        """Place keys that are unique and absent; when two race for one empty slot, one wins, one probes on."""
        slot, todo, mask = self._slots(keys), np.arange(len(keys)), len(self.table) - 1
        while len(todo):
            s = slot[todo]
            free = np.flatnonzero(self.table[s] == 0)
            self.table[s[free]] = keys[todo[free]]
            placed = np.zeros(len(todo), dtype=bool)
            placed[free[self.table[s[free]] == keys[todo[free]]]] = True
            todo = todo[~placed]
            slot[todo] = (slot[todo] + 1) & mask
            if len(todo) <= _TAIL:
                break
        table = self.table
        for i in todo.tolist():
            s = int(slot[i])
            while table[s] != 0:
                s = (s + 1) & mask
            table[s] = keys[i]

    def array(self) -> np.ndarray:
        return self.table[self.table != 0]


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TAIL = 64  # probe chains left when the vectorised rounds stop
_ONE = np.uint64(1)


def _first_in_batch(keys: np.ndarray) -> np.ndarray:
    """True where a key occurs for the first time in the batch."""
    first = np.zeros(len(keys), dtype=bool)
    first[np.unique(keys, return_index=True)[1]] = True
    return first


def _collides_with_earlier(bands: np.ndarray) -> np.ndarray:
    """Rows sharing any band key with an earlier row of the batch."""
    n, b = bands.shape
    rows = np.repeat(np.arange(n), b)
    _, first, inverse = np.unique(bands.ravel(), return_index=True, return_inverse=True)
    return (rows[first][inverse] < rows).reshape(n, b).any(axis=1)


@dataclass
class DedupState:
    """The keys every earlier post brought, and the keys this run added (the run writes only those).

    A post is judged against every earlier post that reached the same check, kept or not: its id against all
    earlier ids, its text against the texts of earlier posts with new ids, its bands against the bands of
    earlier posts with new texts. So the verdicts depend only on the input order, never on how it was cut
    into batches or runs, and the Ray engine, which judges the whole input at once, reaches the same ones.
    """

    params: dict  # near-dup settings the band keys were made with
    ids: HashSet = field(default_factory=HashSet)
    texts: HashSet = field(default_factory=HashSet)
    bands: HashSet = field(default_factory=HashSet)
    added: dict[str, list[np.ndarray]] = field(default_factory=lambda: {"ids": [], "texts": [], "bands": []})

    def judge(self, id_h: np.ndarray, text_h: np.ndarray | None, bands: np.ndarray | None) -> np.ndarray:
        """KEEP / DUP_ID / DUP_TEXT / NEAR_DUP per row, against the store and earlier rows; remembers the keys."""
        verdict = np.full(len(id_h), KEEP, dtype=np.int8)
        live = ~self.ids.contains(id_h) & _first_in_batch(id_h)
        verdict[~live] = DUP_ID
        self._remember("ids", id_h[live])
        if text_h is not None:
            idx = np.flatnonzero(live)
            dup = self.texts.contains(text_h[idx]) | ~_first_in_batch(text_h[idx])
            verdict[idx[dup]] = DUP_TEXT
            live[idx[dup]] = False
            self._remember("texts", text_h[idx[~dup]])
        if bands is not None:
            idx = np.flatnonzero(live)
            near = self.bands.contains(bands[idx]).any(axis=1) | _collides_with_earlier(bands[idx])
            verdict[idx[near]] = NEAR_DUP
            live[idx[near]] = False
            keys = np.unique(bands[idx].ravel())
            self._remember("bands", keys[~self.bands.contains(keys)])
        return verdict

    def _remember(self, kind: str, new_keys: np.ndarray) -> None:
        """Keys known to be unique and absent from the store."""
        getattr(self, kind).add(new_keys, new=True)
        self.added[kind].append(new_keys)

    def new_keys(self, kind: str) -> np.ndarray:
        return np.concatenate(self.added[kind]) if self.added[kind] else np.zeros(0, np.uint64)
