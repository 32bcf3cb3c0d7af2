"""``roost ingest``: sources -> workspace/corpus/ (posts, threads, users shards; rejects; manifest).

The manifest is the commit point. Shards are renamed into place as they are
sealed, but only the files the manifest lists belong to the corpus: a crashed
run's shards are unlisted and removed by the next ingest, and so are its dedup
keys (``dedup-<run>/``, :mod:`roost.corpus.dedup_store`). ``begin`` and ``finish``
are shared with the Ray engine (:mod:`roost.corpus.ray_engine`). Accounting holds per run and in
total: records read = kept + sum(dropped) + sum(malformed).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from roost.corpus.config import IngestConfig
from roost.corpus.dedup import DUP_ID, DUP_TEXT, KEEP, NEAR_DUP, DedupState, HashSet
from roost.corpus.dedup_store import (
    KINDS,
    listed_names,
    read_keys,
    state_entry,
    stored_state,
    write_keys,
)
from roost.corpus.dedup_store import remove_unlisted as remove_unlisted_keys
from roost.corpus.process import BatchProcessor, BatchResult, init_worker, run_batch
from roost.corpus.schema import MODERATION_LOG, POSTS, USERS, read_table, table_files
from roost.corpus.sources import Unit, expand_sources, read_units
from roost.corpus.spam import (
    FEATURES,
    SpamModel,
    accounts,
    accounts_per_skeleton,
    author_keys,
    drop_learned_spam,
    epoch_seconds,
    features,
)
from roost.corpus.threads import build_threads
from roost.corpus.writer import ShardWriter
from roost.workspace import Workspace, file_hash

STAGING_PREFIX = ".staging-"  # the Ray engine's per-run scratch folder in the corpus
DEDUP_REASONS = {DUP_ID: "duplicate_id", DUP_TEXT: "duplicate", NEAR_DUP: "near_duplicate"}


@dataclass
class IngestReport:
    sources: list[str]
    read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    pii_scrubbed: int = 0
    users_added: int = 0
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    total_posts: int = 0
    threads: int = 0

    @property
    def balanced(self) -> bool:
        return self.read == self.kept + sum(self.dropped.values()) + sum(self.malformed.values())

    @property
    def posts_per_s(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        lines = [
            (
                f"read {self.read:,} records from {len(self.sources)} source(s) in {self.seconds:.1f}s "
                f"({self.posts_per_s:,.0f}/s): kept {self.kept:,}"
            )
        ]
        for title, counts in (("dropped", self.dropped), ("malformed", self.malformed)):
            if counts:
                lines.append(f"  {title}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
        lines.append(
            f"  corpus now: {self.total_posts:,} posts, {self.threads:,} threads; "
            f"{self.users_added:,} new users; {self.pii_scrubbed:,} PII spans scrubbed"
        )
        return "\n".join(lines)


def _params(cfg: IngestConfig) -> dict:
    """The settings stored dedup state depends on: changing them breaks dedup across ingests."""
    return {
        "num_perm": cfg.num_perm,
        "threshold": cfg.near_dup_threshold,
        "shingle_words": cfg.shingle_words,
        "seed": cfg.minhash_seed,
        "urls": cfg.urls,
        "mentions": cfg.mentions,
        "scrub_pii": cfg.scrub_pii,
    }


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{folder}: another ingest is writing this corpus; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove_unlisted(folder: Path, listed: set[str]) -> None:
    """Drop what a crashed run left: shards and dedup state the manifest does not list, temp files, staging."""
    for p in folder.iterdir():
        table_file = p.name.endswith(".parquet") and p.name.split("-", 1)[0] in ("posts", "threads", "users")
        state_file = p.name.startswith("dedup-") and p.name.endswith(".npz")
        if ((table_file or state_file) and p.name not in listed) or (
            p.name.startswith(".") and p.name.endswith(".tmp")
        ):
            p.unlink()
        elif p.is_dir() and p.name.startswith(STAGING_PREFIX):
            shutil.rmtree(p)
    remove_unlisted_keys(folder, listed)


@dataclass
class Run:
    """One ingest run's view of the stored corpus, shared by both engines (taken under the corpus lock)."""

    folder: Path
    old: dict
    state: dict[str, list[str]]  # stored dedup key folders by kind
    run: str = field(default_factory=lambda: time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6])
    t0: float = field(default_factory=time.time)

    @property
    def old_files(self) -> dict[str, list[str]]:
        return self.old.get("files", {"posts": [], "threads": [], "users": []})


def begin(workspace: Workspace, cfg: IngestConfig) -> Run:
    """Read the manifest, remove a crashed run's leftovers, check the dedup settings."""
    folder = workspace.corpus
    old = workspace.read_manifest("corpus") or {}
    files = old.get("files", {"posts": [], "threads": [], "users": []})
    _remove_unlisted(folder, {f for fs in files.values() for f in fs} | listed_names(old.get("dedup_state")))
    return Run(folder, old, stored_state(folder, old.get("dedup_state"), _params(cfg)))


def finish(
    workspace: Workspace,
    r: Run,
    cfg: IngestConfig,
    report: IngestReport,
    inputs: dict[str, str],
    new: dict[str, list[str]],
    state: dict[str, list[str]],
    logs: dict[str, list[dict]],
    threads: tuple[list[str], int] | None = None,
) -> None:
    """Rebuild the threads (unless ``threads`` gives the run's threads files, already in the corpus, and
    their thread count: the Ray engine builds them on the cluster), append the logs, commit the manifest,
    remove what it no longer lists."""
    if threads is None:
        cols = read_table(r.folder, "posts", ["id", "reply_to", "conversation_id"])
        table = build_threads(*(cols.column(c).combine_chunks() for c in cols.column_names))
        threads_w = ShardWriter(r.folder, "threads", table.schema, r.run, max(1, table.num_rows))
        threads_w.write(table)
        new_threads = threads_w.close()
        report.total_posts = cols.num_rows
        report.threads = len(pc.unique(table.column("thread_id"))) if table.num_rows else 0
    else:
        new_threads, report.threads = threads
        report.total_posts = sum(pq.read_metadata(f).num_rows for f in table_files(r.folder, "posts"))
    for name, rows in logs.items():
        _append_rejects(r.folder / name, [{"run": r.run, **x} for x in rows])
    report.files = new["posts"] + new["users"] + new_threads
    report.seconds = time.time() - r.t0
    assert report.balanced, f"ingest accounting does not add up: {asdict(report)}"
    old_files = r.old_files
    _commit(
        workspace,
        r.old,
        cfg,
        report,
        r.run,
        inputs,
        {
            "posts": old_files["posts"] + new["posts"],
            "users": old_files["users"] + new["users"],
            "threads": new_threads,
        },
        state_entry(_params(cfg), state),
    )
    legacy = r.old.get("dedup_state")
    for name in old_files["threads"] + ([legacy] if isinstance(legacy, str) else []):
        (r.folder / name).unlink(missing_ok=True)


def unit_batches(sources: list[Path], cfg: IngestConfig, name: str | None = None) -> Iterator[list[Unit]]:
    """Units in batches of about ``cfg.batch_size`` records, in input order (both engines cut them so)."""
    batch: list[Unit] = []
    weight = 0
    for src in sources:
        for u in read_units(src, cfg, name):
            batch.append(u)
            weight += u.payload[2] if u.kind == "lines" else 1
            if weight >= cfg.batch_size:
                yield batch
                batch, weight = [], 0
    if batch:
        yield batch


def _results(sources: list[Path], cfg: IngestConfig) -> Iterator[BatchResult]:
    """Batch results in input order; with workers, at most 2 batches a worker in flight (bounded memory)."""
    workers = cfg.workers or min(4, os.cpu_count() or 1)
    if workers == 1:
        proc = BatchProcessor(cfg)
        yield from map(proc, unit_batches(sources, cfg))
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, initializer=init_worker, initargs=(cfg,)) as pool:
        pending: deque = deque()
        for batch in unit_batches(sources, cfg):
            pending.append(pool.apply_async(run_batch, (batch,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def ingest(
    sources: list[Path], workspace: Workspace, config: IngestConfig | None = None, progress: bool = True
) -> IngestReport:
    """Read, clean, filter, deduplicate and thread ``sources`` into ``workspace/corpus/`` (appending)."""
    from tqdm import tqdm

    cfg = config or IngestConfig()
    files = expand_sources(list(sources))
    with _locked(workspace.corpus):
        r = begin(workspace, cfg)
        folder, run = r.folder, r.run
        dedup = DedupState(_params(cfg), *(HashSet(read_keys(folder, r.state[k])) for k in KINDS))
        known_users = set(read_table(folder, "users", ["id"]).column("id").to_pylist())
        report = IngestReport([str(f) for f in files])
        dropped, malformed, rejects, users = Counter(), Counter(), [], []
        spam_log: list[dict] = []
        moderated: list[dict] = []  # the platform's own signals, for brand safety (roost ads train-safety)
        skeletons, authors = [], []  # the learned spam filter's "same text from many accounts", before dedup
        learned = _KeptSignals()  # and the kept posts' signals, in the order they are written
        posts_w = ShardWriter(folder, "posts", POSTS, run, cfg.rows_per_shard)
        users_w = ShardWriter(folder, "users", USERS, run, cfg.rows_per_shard)
        bar = tqdm(desc="ingest", unit=" posts", unit_scale=True, disable=not progress, smoothing=0.1)
        try:
            for b in _results(files, cfg):
                report.read += b.read
                dropped.update(b.dropped)
                malformed.update(b.malformed)
                report.pii_scrubbed += b.pii_scrubbed
                rejects.extend(b.rejects[: max(0, cfg.max_rejects_logged - len(rejects))])
                spam_log.extend(b.spam[: max(0, cfg.max_rejects_logged - len(spam_log))])
                moderated.extend(b.moderation)
                if b.skeletons is not None:
                    skeletons.append(b.skeletons)
                    authors.append(
                        author_keys(b.posts.column("author_id").to_pylist(), b.posts.column("id").to_pylist())
                    )
                for u in b.users:
                    if u["id"] not in known_users:
                        known_users.add(u["id"])
                        users.append(u)
                if len(users) >= cfg.batch_size:
                    users_w.write(pa.Table.from_pylist(users, schema=USERS))
                    report.users_added += len(users)
                    users = []
                if b.id_hash is not None and len(b.id_hash):
                    verdict = dedup.judge(b.id_hash, b.text_hash, b.bands)
                    for code, reason in DEDUP_REASONS.items():
                        if n := int((verdict == code).sum()):
                            dropped[reason] += n
                    keep = verdict == KEEP
                    posts_w.write(b.posts.filter(pa.array(keep)))
                    if b.spam_signals is not None:
                        learned.add(b, keep)
                    report.kept += int(keep.sum())
                bar.update(b.read)
            users_w.write(pa.Table.from_pylist(users, schema=USERS))
            report.users_added += len(users)
        except BaseException:
            posts_w.abort()
            users_w.abort()
            bar.close()
            raise
        bar.close()
        new_posts, new_users = posts_w.close(), users_w.close()
        if skeletons:
            copies = accounts_per_skeleton(np.concatenate(skeletons), np.concatenate(authors))
            n, log = drop_learned_spam(
                folder,
                new_posts,
                SpamModel.load(cfg.spam_model),
                learned.features(copies, accounts(read_table(folder, "users"))),
            )
            if n:
                dropped["spam_learned"] += n
                report.kept -= n
            spam_log.extend(log[: max(0, cfg.max_rejects_logged - len(spam_log))])
        state = {k: r.state[k] + [write_keys(folder, run, k, dedup.new_keys(k))] for k in KINDS}
        report.dropped, report.malformed = dict(dropped), dict(malformed)
        finish(
            workspace,
            r,
            cfg,
            report,
            {str(f): file_hash(f) for f in files},
            {"posts": new_posts, "users": new_users},
            state,
            {"rejects.jsonl": rejects, "spam.jsonl": spam_log, MODERATION_LOG: moderated},
        )
    return report


@dataclass
class _KeptSignals:
    """The learned spam filter's per-post signals of the posts written this run, in writing order."""

    signals: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    authors: list = field(default_factory=list)
    times: list = field(default_factory=list)

    def add(self, r: BatchResult, keep: np.ndarray) -> None:
        self.signals.append(r.spam_signals[keep])
        self.keys.append(r.skeletons[keep])
        kept = r.posts.filter(pa.array(keep))
        self.authors += kept.column("author_id").to_pylist()
        self.times.append(epoch_seconds(kept.column("created_at")))

    def features(self, copies: dict[int, int], users: dict) -> np.ndarray:
        if not self.signals:
            return np.zeros((0, len(FEATURES)))
        return features(
            np.concatenate(self.signals),
            np.concatenate(self.keys),
            copies,
            self.authors,
            np.concatenate(self.times),
            users,
        )


def _append_rejects(path: Path, rejects: list[dict]) -> None:
    if rejects:
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(x, ensure_ascii=False) + "\n" for x in rejects)
            f.flush()
            os.fsync(f.fileno())


def _add(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0) + b.get(k, 0) for k in sorted(a.keys() | b.keys())}


def _commit(
    ws: Workspace,
    old: dict,
    cfg: IngestConfig,
    rep: IngestReport,
    run: str,
    files: dict[str, str],
    tables: dict[str, list[str]],
    dedup_state: dict,
) -> None:
    prev = old.get("counts", {})
    run_counts = {
        "read": rep.read,
        "kept": rep.kept,
        "dropped": rep.dropped,
        "malformed": rep.malformed,
        "pii_scrubbed": rep.pii_scrubbed,
        "users_added": rep.users_added,
    }
    counts = {
        "read": prev.get("read", 0) + rep.read,
        "kept": prev.get("kept", 0) + rep.kept,
        "dropped": _add(prev.get("dropped", {}), rep.dropped),
        "malformed": _add(prev.get("malformed", {}), rep.malformed),
        "pii_scrubbed": prev.get("pii_scrubbed", 0) + rep.pii_scrubbed,
        "posts": rep.total_posts,
        "threads": rep.threads,
        "users": prev.get("users", 0) + rep.users_added,
    }
    inputs = dict(old.get("inputs", {}))
    inputs.update(files)
    runs = old.get("runs", []) + [
        {"run": run, "sources": list(files), "seconds": round(rep.seconds, 3), "counts": run_counts}
    ]
    ws.write_manifest(
        "corpus", inputs=inputs, counts=counts, files=tables, dedup_state=dedup_state, config=cfg.to_dict(), runs=runs
    )
