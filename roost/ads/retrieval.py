"""Creative embeddings in an ANN index: the model-matched half of candidate retrieval.

Creative texts are embedded once per embedding space (a model's content hash)
and cached in ads.db, so a restart or a new campaign embeds only what is new.
The vectors go into a usearch HNSW index (cosine, stored as int8: 4x less
memory and about 5x faster to build than float32, with the same top hits in our
checks); the hits' similarities are then computed exactly from a dense copy,
which also scores candidates found another way (keyword match).

Building the graph is the slow part of a start (minutes at 100k creatives on two
cores), so the index can be saved next to the database and loaded on the next
start. A saved index is used only if every creative in it still has the text it
was built from (a fingerprint over ids and texts), else it is rebuilt.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pyarrow  # noqa: F401  must load before usearch: the other order segfaults on the first Parquet read
import xxhash
from tqdm import tqdm
from usearch.index import Index

from roost.ads.catalog import Catalog, Creative
from roost.ads.embedder import EmbedFn
from roost.ads.store import AdStore
from roost.workspace import atomic_write_json


def embed_in_batches(
    embed: EmbedFn, texts: list[str], batch_size: int = 256, desc: str = "embedding", threads: str = "fixed"
) -> np.ndarray:
    """The texts' vectors, a batch at a time; ``threads="auto"`` tunes the CPU threads per batch
    (roost.threads: several times faster beside other busy work)."""
    out = []
    batches = tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch", disable=len(texts) <= batch_size)
    if threads == "auto":  # torch only then: the hashing embedder's serving path does without it
        from roost.threads import tuned_steps

        batches = tuned_steps(batches, auto=True)
    for i in batches:
        out.append(np.asarray(embed(texts[i : i + batch_size]), dtype=np.float32))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def fingerprint(creatives: list[Creative]) -> str:
    h = xxhash.xxh64()
    for c in sorted(creatives, key=lambda c: c.id):
        h.update(f"{c.id}\0{c.text}\0".encode())
    return h.hexdigest()


class CreativeIndex:
    def __init__(self, store: AdStore, embed: EmbedFn, space: str, path: str | Path | None = None):
        self.store, self.embed, self.space = store, embed, space
        self.path = Path(path) if path is not None else None
        self.index: Index | None = None
        self.rows: dict[int, int] = {}  # creative id -> row of matrix
        self._row_of = np.zeros(0, np.int64)  # the same as an array indexed by creative id (-1: not indexed)
        self.matrix = np.zeros((0, 0), dtype=np.float32)  # every indexed creative's vector

    def _vectors_for(self, creatives: list[Creative]) -> np.ndarray:
        """Cached vectors, embedding (and caching) the creatives not seen in this space before."""
        cached = self.store.cached_embeddings(self.space)
        missing = [c for c in creatives if c.id not in cached]
        if missing:
            vecs = embed_in_batches(self.embed, [c.text for c in missing], desc="embedding creatives")
            self.store.save_embeddings(self.space, [(c.id, v.tobytes()) for c, v in zip(missing, vecs)])
            cached.update((c.id, v.tobytes()) for c, v in zip(missing, vecs))
        return np.stack([np.frombuffer(cached[c.id], dtype=np.float32) for c in creatives])

    def _load_saved(self, creatives: list[Creative]) -> Index | None:
        meta_path = self.path.with_suffix(".json") if self.path else None
        if meta_path is None or not (self.path.exists() and meta_path.exists()):
            return None
        meta = json.loads(meta_path.read_text())
        index = Index.restore(str(self.path))
        if index is None or meta.get("space") != self.space:
            return None
        saved = set(_keys(index))
        by_id = {c.id: c for c in creatives}
        if not saved.issubset(by_id) or fingerprint([by_id[k] for k in saved]) != meta.get("fingerprint"):
            return None  # the database changed under it (e.g. recreated): rebuild
        return index

    def add(self, creatives: list[Creative]) -> int:
        """Index these creatives (ones already in the index are kept as they are); returns how many were added."""
        if not creatives:
            return 0
        vecs = self._vectors_for(creatives)
        keys = np.array([c.id for c in creatives], dtype=np.uint64)
        fresh = [i for i, c in enumerate(creatives) if c.id not in self.rows]
        base = len(self.rows)
        self.rows.update((creatives[i].id, base + j) for j, i in enumerate(fresh))
        self.matrix = np.concatenate([self.matrix.reshape(-1, vecs.shape[1]), vecs[fresh]])
        row_of = np.full(max(self.rows) + 1, -1, np.int64)  # ids are the database's: dense from 1
        row_of[list(self.rows)] = list(self.rows.values())
        self._row_of = row_of
        if self.index is None:
            self.index = self._load_saved(creatives) or Index(ndim=vecs.shape[1], metric="cos", dtype="i8")
        new = ~np.asarray(self.index.contains(keys), dtype=bool)
        if new.any():
            self.index.add(keys[new], vecs[new], progress=_progress(int(new.sum())))
        return int(new.sum())

    def save(self) -> None:
        """Write the index and its fingerprint (index first: a crash leaves a mismatch, hence a rebuild)."""
        if self.path is None or self.index is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")  # replicas may save at once
        self.index.save(str(tmp))
        os.replace(tmp, self.path)
        atomic_write_json(
            self.path.with_suffix(".json"), {"space": self.space, "fingerprint": fingerprint(self._indexed())}
        )

    def _indexed(self) -> list[Creative]:
        ids = set(_keys(self.index))
        return [
            Creative(r["id"], r["campaign_id"], r["text"], r["landing_url"])
            for r in self.store.creative_rows()
            if r["id"] in ids
        ]

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k creatives most similar to ``query``, nearest first: (creative ids, cosine similarities)."""
        if self.index is None or len(self.index) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        found = self.index.search(query.astype(np.float32), min(k, len(self.index)))
        ids = np.asarray(found.keys, np.int64)
        return ids, self.similarity(query, ids)  # exact, as for every other candidate

    def similarity(self, query: np.ndarray, creative_ids: list[int] | np.ndarray) -> np.ndarray:
        """Exact cosine of each creative (all indexed) to ``query``: one gather of matrix rows, one product."""
        if not len(creative_ids):
            return np.zeros(0, np.float32)
        rows = self._row_of[np.asarray(creative_ids, np.int64)]
        if rows.min() < 0:
            raise KeyError(f"creatives not in the index: {np.asarray(creative_ids)[rows < 0].tolist()}")
        return self.matrix[rows] @ query


def _keys(index: Index) -> list[int]:
    """Every key of the index in one call (iterating ``index.keys`` fetches one key per call and took 3 minutes
    at 133k creatives: most of a 100k-campaign start)."""
    return np.asarray(index.keys, np.int64).tolist()


def _progress(n: int):
    """A tqdm bar for big index builds, as usearch's progress callback (return True to go on)."""
    if n < 10_000:
        return None
    bar = tqdm(total=n, desc="indexing creatives", unit="vector")

    def update(done: int, total: int) -> bool:
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
        return True

    # usearch checks the callback's annotations as types; `from __future__ import annotations` made them strings
    update.__annotations__ = {"done": int, "total": int, "return": bool}
    return update


def no_match_floor(
    catalog: Catalog, index: CreativeIndex | None, quantile: float | None, sample: int = 400
) -> float | None:
    """The similarity a match needs: the ``quantile`` of creative pairs on disjoint topics
    (``AdsConfig.no_match_quantile``).

    Why the catalog: every embedding space has its own floor (a small model's
    vectors are all alike, cosines of 0.6 between anything), and pairs of
    creatives that target different topics show what unrelated texts score in
    this space. None (no threshold) without an index or two topics to compare.
    """
    if quantile is None or index is None:
        return None
    cands = [c for c in catalog.creatives.values() if catalog.campaigns[c.campaign_id].topics and c.id in index.rows]
    cands = random.Random(0).sample(cands, min(sample, len(cands)))
    topics = [catalog.campaigns[c.campaign_id].topics for c in cands]
    vecs = index.matrix[[index.rows[c.id] for c in cands]]
    sims = vecs @ vecs.T
    off = [sims[i, j] for i in range(len(cands)) for j in range(i + 1, len(cands)) if not topics[i] & topics[j]]
    return float(np.quantile(off, quantile)) if len(off) >= 20 else None
