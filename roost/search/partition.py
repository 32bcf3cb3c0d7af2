"""A search index split into partitions by post id, built by many workers.

``roost index --partitions N`` writes ``workspace/index/part-0`` ... ``part-{N-1}``,
each a complete index folder (doc store, tantivy, vectors) over the posts whose
id hashes to it, and records ``"partitions": N`` in the index manifest. A post's
partition is a hash of its id (:func:`partition_of`), so live writes and deletes
go to one partition without asking the others, and every partition gets the same
share of old and new posts: no partition is hot for fresh posts, and a query's
work is spread evenly (an index split by time, as Earlybird does for its archive,
makes the newest partition both the one that is written and the one most read).

Each post keeps the key it would have in one index (its place in the corpus), so
ties between equal scores break the same way as in one index.

Workers build partitions in parallel processes (``--workers``, each embedding its
posts with its own copy of the model) or as Ray tasks on a cluster
(``--engine ray``); either way the output folder must be storage every worker
writes to.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from roost.corpus import schema
from roost.search.build import (
    POST_COLUMNS,
    BuildConfig,
    author_quality_from_users,
    batch_posts,
    build_index,
    index_inputs,
)
from roost.search.docstore import Post
from roost.search.vector import VectorConfig
from roost.workspace import Workspace, atomic_dir


def partition_of(post_id: str, n: int) -> int:
    """The partition that owns ``post_id`` among ``n`` (a stable hash: the same on every machine and run)."""
    return int.from_bytes(hashlib.blake2b(post_id.encode(), digest_size=8).digest(), "big") % n


def part_dir(index_dir: str | Path, i: int) -> Path:
    return Path(index_dir) / f"part-{i}"


def partition_vector_config(parts: int) -> VectorConfig:
    """The vector search of one partition among ``parts``: its ef (``expansion_search``) divided by sqrt(parts).

    HNSW's recall at a given ef falls as its graph grows, so a partition holding 1/P of the posts, asked for
    its share of the top k, needs less ef than one index for the same recall; the search's cost is about
    proportional to ef, and P partitions pay it P times. Measured at 1M posts (int8, 300 queries, recall@50 of
    the merged list against exact search; docs/search-partitions.md): one index at ef 128: 0.56; 2 partitions at
    ef 91: 0.59; 4 at ef 64: 0.62 (4 at ef 128: 0.72, for twice the CPU)."""
    base = VectorConfig()
    return VectorConfig(expansion_search=max(16, math.ceil(base.expansion_search / math.sqrt(max(parts, 1)))))


def partitions_in(manifest: dict | None) -> int:
    """How many partitions an index manifest says its folder holds (0: one unpartitioned index)."""
    return int((manifest or {}).get("partitions", 0))


@dataclass
class PartitionJob:
    """One partition to build: picklable, so a worker process or a Ray task can run it."""

    corpus: str
    out: str
    part: int
    parts: int
    model_dir: str | None  # embed with this folder's search model; None: lexical only
    config: BuildConfig
    threads: int = 1  # torch threads for this worker's embedding


def partition_posts(corpus: Path, part: int, parts: int, batch_size: int) -> Iterator[list[Post]]:
    """The corpus's posts that belong to ``part``, keyed by their place in the corpus."""
    position = 0
    for batch in schema.iter_batches(corpus, "posts", columns=POST_COLUMNS, batch_size=batch_size):
        posts = batch_posts(batch)
        for j, p in enumerate(posts):
            p.key = position + j
        position += len(posts)
        yield [p for p in posts if partition_of(p.id, parts) == part]


def build_partition(job: PartitionJob) -> dict:
    """Build one partition's folder; returns its counts."""
    embed = None
    if job.model_dir is not None:
        import torch

        from roost.search.embed import load_search_model

        torch.set_num_threads(job.threads)
        device = f"cuda:{job.part % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
        embed = load_search_model(job.model_dir, device=device)  # one GPU per worker when there are several
    corpus = Path(job.corpus)
    counts = build_index(
        partition_posts(corpus, job.part, job.parts, job.config.batch_size),
        job.out,
        embed,
        author_quality=author_quality_from_users(corpus, job.config.followers_half),
        config=job.config,
    )
    return {"part": job.part, **counts}


def run_jobs(jobs: list[PartitionJob], workers: int, engine: str = "local", address: str | None = None) -> list[dict]:
    """Build the partitions: in this process (one worker), in worker processes, or as Ray tasks."""
    if engine == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0  # Ray gives each task its own GPU
        task = ray.remote(num_cpus=1, num_gpus=gpus)(build_partition)
        return ray.get([task.remote(j) for j in jobs])
    if workers <= 1:
        return [build_partition(j) for j in jobs]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:  # torch and fork do not mix
        return list(pool.map(build_partition, jobs))


def build_partitioned_index(
    ws: Workspace,
    parts: int,
    *,
    model_dir: Path | None,
    model_hash: str | None = None,
    workers: int = 1,
    engine: str = "local",
    address: str | None = None,
    config: BuildConfig | None = None,
) -> dict:
    """Build ``ws.index`` as ``parts`` partitions, atomically; writes and returns its manifest."""
    cfg = config or BuildConfig()
    inputs = index_inputs(ws, model_hash)
    workers = max(1, min(workers, parts))
    threads = max(1, (os.cpu_count() or 1) // workers)
    with atomic_dir(ws.index) as tmp:
        jobs = [
            PartitionJob(
                str(ws.corpus), str(part_dir(tmp, i)), i, parts, str(model_dir) if model_dir else None, cfg, threads
            )
            for i in range(parts)
        ]
        results = sorted(run_jobs(jobs, workers, engine, address), key=lambda r: r["part"])
        counts = {
            "posts": sum(r["posts"] for r in results),
            "duplicate_ids_skipped": sum(r["duplicate_ids_skipped"] for r in results),
            "vectors": sum(r["vectors"] for r in results),
            "dim": max(r["dim"] for r in results),
            "per_partition": [r["posts"] for r in results],
        }
        return ws.write_manifest("index", inputs, counts, folder=tmp, semantic=model_dir is not None, partitions=parts)
