"""``roost ingest --engine ray``: the local engine's ingest as Ray Data jobs, same result on the same input.

1. Read: one task per source file runs the shared per-post code (``BatchProcessor``) and stages the
   file's candidates, users and logs, and its keys sorted for the shuffles (:func:`ray_stages.read_source`).
2. Dedup, global: the candidates' id hashes and the stored ids are cut into key ranges, one task a range
   (:mod:`ray_shuffle`: a range is read from every sorted key file with a filter), and in each range a post
   is a duplicate when a stored post or an earlier one has its key; the survivors' text hashes likewise,
   then their MinHash LSH band keys (a near duplicate shares a band with an earlier post). No process
   holds all the stored keys; each run writes the keys it added (:mod:`roost.corpus.dedup_store`, the
   local engine's format too), sorted, so later runs read only their range of them.
3. Users and spam signals, one range stage: the users table and the candidates by account key (new
   users; each post's account) and the candidates by skeleton key (how many accounts posted the same text).
4. Finish: one task per source drops what 2 and 3 noted and writes its posts; the driver renames the
   files into the corpus.
5. Threads over the stored and the new posts, by pointer jumping in range stages (:mod:`ray_threads`:
   ``build_threads``'s table, built without any process holding the corpus's reply columns); then the
   driver commits the manifest (``ingest.finish``: logs, accounting).

The driver holds per-source counts, the (capped) logs and the moderation labels.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from roost.corpus import ray_shuffle as sh
from roost.corpus import ray_stages as st
from roost.corpus.config import IngestConfig
from roost.corpus.dedup import DUP_ID, DUP_TEXT, NEAR_DUP
from roost.corpus.dedup_store import KINDS
from roost.corpus.ingest import STAGING_PREFIX, IngestReport, _locked, begin, finish
from roost.corpus.minhash import MinHasher
from roost.corpus.ray_threads import rebuild_threads
from roost.corpus.remote import expand
from roost.corpus.schema import MODERATION_LOG, table_files
from roost.workspace import Workspace

CODES = {"ids": DUP_ID, "texts": DUP_TEXT, "bands": NEAR_DUP}  # the drop reason each dedup stage notes


def ingest_ray(
    sources: list[str],
    workspace: Workspace,
    config: IngestConfig | None = None,
    address: str | None = None,
    progress: bool = True,
    partitions: int = 0,
    range_rows: int = sh.PARTITION_ROWS,
    on_batch: Callable[[str, int], None] | None = None,
) -> IngestReport:
    """Ingest ``sources`` (paths or fsspec URLs) on a Ray cluster into ``workspace/corpus/``.

    ``address``: the cluster (default: a connected one, else ``RAY_ADDRESS``, else a Ray started here).
    ``partitions``: key ranges each shuffle is cut into at least (0: two per CPU of the cluster);
    ``range_rows``: rows a range holds at most (a range task's memory). ``on_batch(source, i)``
    is called in the worker after each batch a source is read in (tests use it to kill a worker).
    """
    import ray

    cfg = config or IngestConfig()
    files = expand(list(sources))
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address or os.environ.get("RAY_ADDRESS"),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        ctx.verbose_progress = False
        least = partitions or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        parts = sh.Ranges(least, range_rows)
        with _locked(workspace.corpus):
            return _run(files, workspace, cfg, parts, on_batch)
    finally:
        if started:
            ray.shutdown()


def _run(
    files: list[str],
    workspace: Workspace,
    cfg: IngestConfig,
    parts: sh.Ranges,
    on_batch: Callable[[str, int], None] | None,
) -> IngestReport:
    import ray

    r = begin(workspace, cfg)
    staging = r.folder / f"{STAGING_PREFIX}{r.run}"
    items = ray.data.from_items(
        [{"index": i, "source": s} for i, s in enumerate(files)], override_num_blocks=max(1, len(files))
    )
    read = items.map_batches(
        st.read_source,
        batch_size=1,
        fn_kwargs={"cfg": cfg, "staging": str(staging), "n_bands": hasher_bands(cfg), "on_batch": on_batch},
    )
    stats = [json.loads(x) for x in read.to_pandas().sort_values("index")["stats"]]
    report = IngestReport(files)
    dropped, malformed = Counter(), Counter()
    for s in stats:
        report.read += s["read"]
        report.pii_scrubbed += s["pii"]
        dropped.update(s["dropped"])
        malformed.update(s["malformed"])

    cands = sum(s["candidates"] for s in stats)
    new_state = _dedup(r.folder, r.state, cands, staging, cfg, parts, r.run)
    _accounts_and_copies(r.folder, cands, staging, cfg, parts)

    done = items.map_batches(st.finish_source, batch_size=1, fn_kwargs={"cfg": cfg, "staging": str(staging)})
    spam_log: list[dict] = []
    logs = _logs(staging, len(files), cfg)
    for s in (json.loads(x) for x in done.to_pandas()["stats"]):
        report.kept += s["kept"]
        dropped.update(s["dropped"])
        spam_log += s["spam"]
    logs["spam.jsonl"] = (logs["spam.jsonl"] + spam_log)[: cfg.max_rejects_logged]
    report.dropped, report.malformed = dict(dropped), dict(malformed)

    new = {"posts": _move(staging / "posts", r.folder, "posts", r.run)}
    new["users"] = _move(staging / "users_out", r.folder, "users", r.run)
    report.users_added = sum(_rows(r.folder / f) for f in new["users"])
    state = {k: r.state[k] + new_state[k] for k in KINDS}
    posts = [str(r.folder / f) for f in r.old_files["posts"] + new["posts"]]
    out, n_threads = rebuild_threads(posts, staging / "threads", parts, _ranges)
    threads = (_move(out, r.folder, "threads", r.run), n_threads)
    finish(workspace, r, cfg, report, {s["source"]: s["hash"] for s in stats}, new, state, logs, threads)
    shutil.rmtree(staging, ignore_errors=True)
    return report


def _ranges(n: int, fn, **kwargs) -> list[dict]:
    """Run ``fn`` as one Ray Data task for each of ``n`` key ranges; their counts."""
    import ray

    items = ray.data.from_items([{"part": p} for p in range(n)], override_num_blocks=n)
    done = items.map_batches(fn, batch_size=1, fn_kwargs={"parts": n, **kwargs})
    return [json.loads(x) for x in done.to_pandas()["stats"]]


def _files(folder: Path, dirs: list[str]) -> list[str]:
    return [str(f) for d in dirs for f in sorted((folder / d).glob("*.parquet"))]


def hasher_bands(cfg: IngestConfig) -> int:
    """LSH bands a post has (MinHashLSH's optimal layout for the threshold and permutations)."""
    return MinHasher(cfg.num_perm, cfg.near_dup_threshold, cfg.shingle_words, cfg.minhash_seed).bands


def _dedup(
    folder: Path,
    stored: dict[str, list[str]],
    cands: int,
    staging: Path,
    cfg: IngestConfig,
    parts: sh.Ranges,
    run: str,
) -> dict[str, list[str]]:
    """Judge every candidate against the store and the earlier candidates, as ``DedupState.judge`` does:
    ids, then the survivors' texts, then their band keys, each a range stage (:mod:`ray_shuffle`) that
    writes the dropped posts as notes and the keys this run adds. Returns the added key folders."""
    added: dict[str, list[str]] = {k: [] for k in KINDS}
    if not cands:
        return added
    stages = ["ids"] + ["texts"] * cfg.dedup_exact + ["bands"] * cfg.dedup_near
    rows = cands
    for i, kind in enumerate(stages):
        old = _files(folder, stored[kind])
        n = parts.count(rows + sum(_rows(Path(f)) for f in old))
        rel = f"dedup-{run}/{kind}"
        (folder / rel).mkdir(parents=True, exist_ok=True)
        out = _ranges(
            n,
            sh.dedup_range,
            kind=kind,
            code=CODES[kind],
            inputs=_files(staging, [f"keys/{kind}"]),
            stored=old,
            staging=str(staging),
            keys_out=str(folder / rel),
            nxt=stages[i + 1] if i + 1 < len(stages) else None,
        )
        rows = sum(o["passed"] for o in out)
        added[kind].append(rel)
    return added


def _accounts_and_copies(folder: Path, cands: int, staging: Path, cfg: IngestConfig, parts: sh.Ranges) -> None:
    """The run's new users (users_out/) and the learned spam filter's notes (copies by skeleton, each
    post's account), by user-id key and skeleton key in one range stage."""
    import ray

    stored = [str(f) for f in table_files(folder, "users")]
    if stored:
        items = ray.data.from_items(
            [{"part": j, "path": f} for j, f in enumerate(stored)], override_num_blocks=len(stored)
        )
        items.map_batches(sh.key_stored_users, batch_size=1, fn_kwargs={"staging": str(staging)}).materialize()
    users = _files(staging, ["users", "users_stored"])
    learned = cfg.drop_spam and cfg.spam_learned and cands > 0
    authors = _files(staging, ["keys/authors"]) if learned else []
    skeletons = _files(staging, ["keys/skeletons"]) if learned else []
    rows = sum(_rows(Path(f)) for f in users + authors + skeletons)
    if rows:
        _ranges(
            parts.count(rows),
            sh.people_range,
            users=users,
            authors=authors,
            skeletons=skeletons,
            staging=str(staging),
        )


def _logs(staging: Path, n: int, cfg: IngestConfig) -> dict[str, list[dict]]:
    """The sources' rejects and rule-spam logs (capped, in source order) and moderation labels."""
    out: dict[str, list[dict]] = {"rejects.jsonl": [], "spam.jsonl": [], MODERATION_LOG: []}
    for i in range(n):
        logs = json.loads((staging / "logs" / f"{i:06d}.json").read_text())
        out["rejects.jsonl"] += logs["rejects"][: max(0, cfg.max_rejects_logged - len(out["rejects.jsonl"]))]
        out["spam.jsonl"] += logs["spam"][: max(0, cfg.max_rejects_logged - len(out["spam.jsonl"]))]
        out[MODERATION_LOG] += logs["moderation"]
    return out


def _move(src: Path, folder: Path, table: str, run: str) -> list[str]:
    """Non-empty Parquet files of ``src`` renamed into the corpus as ``{table}-{run}-{n:05d}.parquet``."""
    names = []
    for f in sorted(src.glob("*.parquet")) if src.exists() else []:
        if _rows(f):
            name = f"{table}-{run}-{len(names):05d}.parquet"
            os.replace(f, folder / name)
            names.append(name)
    return names


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows
