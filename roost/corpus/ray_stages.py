"""What the Ray engine's tasks run: reading a source file, judging the keys of one range, finishing a file.

Every task writes its output under a name fixed by its input (a source's index, a key range) and
renames it into place when complete, so a task Ray retries after its worker died overwrites its first
attempt's output instead of adding to it: no record is lost or counted twice. Per-post work is
:class:`roost.corpus.process.BatchProcessor`, the same code the local engine runs.

A candidate's *order* is ``source index << 40 | its place among the source's candidates``: the order the
local engine meets posts in, which decides which of two duplicates is the earlier one and is kept.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from roost.corpus.config import IngestConfig
from roost.corpus.ingest import DEDUP_REASONS, unit_batches
from roost.corpus.process import BatchProcessor, BatchResult
from roost.corpus.schema import POSTS, USERS
from roost.corpus.spam import (
    FEATURES,
    TEXT_FEATURES,
    Account,
    SpamModel,
    author_keys,
    epoch_seconds,
    features,
)

ORDER_BITS = 40  # candidates a source may hold: 2^40
KEYED = ["id_hash", "order", "text_hash", "bands", "author_id", "author_key", "skeleton"]  # what the shuffles take
CANDIDATES = pa.schema(
    list(POSTS)
    + [
        ("order", pa.int64()),
        ("id_hash", pa.uint64()),
        ("text_hash", pa.uint64()),
        ("bands", pa.list_(pa.uint64())),
        ("skeleton", pa.uint64()),
        ("author_key", pa.uint64()),
        ("signals", pa.list_(pa.float32())),
    ]
)
# What the dedup and spam stages learn about a candidate, written partitioned by source for its finish task.
NOTES = pa.schema(
    [
        ("file", pa.int64()),
        ("order", pa.int64()),
        ("reason", pa.int8()),
        ("copies", pa.int64()),
        ("acct_created", pa.float64()),
        ("acct_followers", pa.int64()),
    ]
)
ACCOUNTS = pa.schema(list(NOTES) + list(USERS))  # a user row has an id, a note row an order
USER, POST = 0, 1  # the kinds of row the users stage groups by account

_processor: tuple[str, BatchProcessor] | None = None


def processor(cfg: IngestConfig) -> BatchProcessor:
    """One BatchProcessor a worker process (MinHash permutations and fastText load once)."""
    global _processor
    key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    if _processor is None or _processor[0] != key:
        _processor = (key, BatchProcessor(cfg))
    return _processor[1]


def write_atomic(table: pa.Table, path: Path, row_group_size: int | None = None) -> None:
    """Written under a temporary name and renamed: a retried task replaces, never adds. Nothing is written
    for no rows (readers take the files there are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not table.num_rows:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, row_group_size=row_group_size)
    os.replace(tmp, path)


def candidates(r: BatchResult, first: int, n_bands: int) -> pa.Table:
    """A batch's candidate posts with the keys dedup and the learned spam filter need, in CANDIDATES."""
    n = r.posts.num_rows
    zeros = np.zeros(n, np.uint64)
    cols = {f.name: r.posts.column(f.name) for f in POSTS}
    bands = r.bands if r.bands is not None else np.zeros((n, n_bands), np.uint64)
    signals = r.spam_signals if r.spam_signals is not None else np.zeros((n, len(TEXT_FEATURES)), np.float32)
    cols.update(
        order=pa.array(np.arange(first, first + n, dtype=np.int64)),
        id_hash=pa.array(r.id_hash),
        text_hash=pa.array(r.text_hash if r.text_hash is not None else zeros),
        bands=pa.FixedSizeListArray.from_arrays(pa.array(bands.ravel()), bands.shape[1]).cast(pa.list_(pa.uint64())),
        skeleton=pa.array(r.skeletons if r.skeletons is not None else zeros),
        author_key=pa.array(author_keys(cols["author_id"].to_pylist(), cols["id"].to_pylist())),
        signals=pa.FixedSizeListArray.from_arrays(pa.array(signals.ravel().astype(np.float32)), signals.shape[1]).cast(
            pa.list_(pa.float32())
        ),
    )
    return pa.table(cols, schema=CANDIDATES)


def read_source(
    batch: dict, cfg: IngestConfig, staging: str, n_bands: int, on_batch: Callable[[str, int], None] | None = None
) -> dict:
    """Map task: one source file -> staged candidates, users and logs; returns the file's counts."""
    from roost.corpus.ray_shuffle import stage_keys  # it imports this module's partition code
    from roost.corpus.remote import local_file
    from roost.workspace import file_hash

    index, source = int(batch["index"][0]), str(batch["source"][0])
    out, proc = Path(staging), processor(cfg)
    read, dropped, malformed, pii = 0, Counter(), Counter(), 0
    logs: dict[str, list] = {"rejects": [], "spam": [], "moderation": []}
    users, n, keys = [], 0, []
    cand_path = out / "cand" / f"{index:06d}.parquet"
    cand_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = cand_path.with_name(f".{cand_path.name}.{os.getpid()}.tmp")
    writer = pq.ParquetWriter(tmp, CANDIDATES)  # streamed: a worker holds one batch, whatever the file's size
    with local_file(source) as path, writer:
        digest = file_hash(path)
        for i, units in enumerate(unit_batches([path], cfg, name=source)):
            r = proc(units)
            read, pii = read + r.read, pii + r.pii_scrubbed
            dropped.update(r.dropped)
            malformed.update(r.malformed)
            logs["rejects"] += r.rejects[: max(0, cfg.max_rejects_logged - len(logs["rejects"]))]
            logs["spam"] += r.spam[: max(0, cfg.max_rejects_logged - len(logs["spam"]))]
            logs["moderation"] += r.moderation
            users += r.users
            c = candidates(r, (index << ORDER_BITS) + n, n_bands)
            writer.write_table(c)
            keys.append(c.select(KEYED))
            n += r.posts.num_rows
            if on_batch is not None:
                on_batch(source, i)
    if n:
        os.replace(tmp, cand_path)
    else:  # Ray reads an empty Parquet file as a block without columns, which its shuffle refuses
        tmp.unlink()
    u = pa.Table.from_pylist(users, schema=USERS)
    u = u.append_column("order", pa.array(np.arange(len(users), dtype=np.int64) + (index << ORDER_BITS)))
    learned = cfg.drop_spam and cfg.spam_learned
    stage_keys(pa.concat_tables(keys) if keys else None, u, out, index, learned)
    logs_path = out / "logs" / f"{index:06d}.json"
    logs_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = logs_path.with_name(f".{logs_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(logs, default=str))
    os.replace(tmp, logs_path)
    stats = {
        "source": source,
        "hash": digest,
        "read": read,
        "candidates": n,
        "dropped": dropped,
        "malformed": malformed,
    }
    stats["pii"] = pii
    return {"index": np.array([index]), "stats": np.array([json.dumps(stats)])}


def group_min(keys: pa.Array, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the smallest order among rows with the same key, True on one row of each key) for every row."""
    if len(order) == 0:
        return order, np.zeros(0, bool)
    idx = pc.sort_indices(pa.table({"k": keys, "o": order}), [("k", "ascending"), ("o", "ascending")]).to_numpy()
    k = keys.take(pa.array(idx))
    head = np.ones(len(idx), bool)
    head[1:] = ~pc.equal(k.slice(1), k.slice(0, len(k) - 1)).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(head)
    sorted_min = np.repeat(order[idx][starts], np.diff(np.append(starts, len(idx))))
    gmin, first = np.empty_like(order), np.zeros(len(idx), bool)
    gmin[idx] = sorted_min
    first[idx[head]] = True
    return gmin, first


def judge_partition(t: pa.Table, code: int) -> pa.Table:
    """Rows of one key range (new candidates, and stored keys at order -1): each new row is kept for
    the next check when it is the first with its key, else marked ``code``. Stored rows are left out."""
    order = t.column("order").to_numpy()
    gmin, _ = group_min(t.column("key").combine_chunks(), order)
    verdict = np.where(order == gmin, 0, code).astype(np.int8)
    return t.append_column("verdict", pa.array(verdict)).filter(pa.array(order >= 0))


def bands_partition(t: pa.Table) -> pa.Table:
    """Band keys of one range: a pair is dominated when an earlier post (or a stored one) has its key;
    ``new`` marks one pair of each key no stored post had (the keys this run adds to the store)."""
    order = t.column("order").to_numpy()
    gmin, head = group_min(t.column("key").combine_chunks(), order)
    return pa.table(
        {
            "key": t.column("key"),
            "order": t.column("order"),
            "dominated": pa.array(order > gmin),
            "new": pa.array(head & (gmin >= 0)),
        }
    )


def copies_partition(t: pa.Table) -> pa.Table:
    """Candidates by skeleton key: for each one whose skeleton several accounts posted, how many did."""
    pairs = t.select(["key", "author_key"]).group_by(["key", "author_key"]).aggregate([])
    counts = pairs.group_by("key").aggregate([("author_key", "count")])
    per_key = dict(zip(counts.column("key").to_pylist(), counts.column("author_key_count").to_pylist()))
    copies = np.array([per_key[k] for k in t.column("key").to_pylist()], dtype=np.int64)
    many = copies > 1
    return notes(t.column("order").to_numpy()[many], copies=copies[many])


def accounts_partition(t: pa.Table) -> pa.Table:
    """Users and candidates by user id (stored users at order -1, this run's at their order, candidates
    of kind POST): new users are the first of their id when none is stored; each candidate gets its
    author's account (the stored row, else the run's first). Returns ACCOUNTS rows: notes and new users."""
    is_post = t.column("kind").to_numpy(zero_copy_only=False) == POST
    users = t.filter(pa.array(~is_post))
    gmin, _ = group_min(users.column("key").combine_chunks(), users.column("order").to_numpy())
    account = users.filter(pa.array(users.column("order").to_numpy() == gmin))
    created = epoch_or_none(account.column("created_at"))
    by_id = {
        k: (c, f)
        for k, c, f in zip(account.column("key").to_pylist(), created, account.column("followers_count").to_pylist())
        if c is not None
    }
    posts = t.filter(pa.array(is_post))
    found = [
        (o, *by_id[k]) for k, o in zip(posts.column("key").to_pylist(), posts.column("order").to_pylist()) if k in by_id
    ]
    acct = notes(
        np.array([o for o, _, _ in found], np.int64),
        acct_created=[c for _, c, _ in found],
        acct_followers=[f for _, _, f in found],
    )
    new_users = account.filter(pc.greater_equal(account.column("order"), 0)).select(USERS.names)
    return pa.concat_tables([_pad(acct, ACCOUNTS), _pad(new_users, ACCOUNTS)])


def _pad(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """``t`` with ``schema``'s other columns added as nulls."""
    return pa.table(
        {
            f.name: t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type)
            for f in schema
        },
        schema=schema,
    )


def epoch_or_none(col: pa.ChunkedArray) -> list[float | None]:
    secs = epoch_seconds(col)
    return [None if np.isnan(s) else float(s) for s in secs]


def notes(
    order: np.ndarray,
    reason: np.ndarray | None = None,
    copies: np.ndarray | None = None,
    acct_created: np.ndarray | None = None,
    acct_followers: list | None = None,
) -> pa.Table:
    n = len(order)

    def col(v, t: pa.DataType) -> pa.Array:
        return pa.nulls(n, t) if v is None else pa.array(v, t)

    return pa.table(
        {
            "file": pa.array(np.asarray(order, np.int64) >> ORDER_BITS),
            "order": pa.array(order, pa.int64()),
            "reason": col(reason, pa.int8()),
            "copies": col(copies, pa.int64()),
            "acct_created": col(acct_created, pa.float64()),
            "acct_followers": col(acct_followers, pa.int64()),
        },
        schema=NOTES,
    )


def finish_source(batch: dict, cfg: IngestConfig, staging: str) -> dict:
    """Finish task: one source's candidates less its dropped ones, less the learned spam filter's -> a posts
    file; returns the counts and the spam log."""
    index = int(batch["index"][0])
    out = Path(staging)
    cand_file = out / "cand" / f"{index:06d}.parquet"
    cand = pq.read_table(cand_file) if cand_file.exists() else CANDIDATES.empty_table()
    note_files = [str(f) for f in sorted((out / "notes").glob("*/*.parquet"))]  # each sorted by order, so file
    note = (
        ds.dataset(note_files, schema=NOTES, format="parquet").to_table(filter=pc.field("file") == index)
        if note_files
        else NOTES.empty_table()
    )
    drops = note.filter(pc.is_valid(note.column("reason")))
    dropped_orders, first = np.unique(drops.column("order").to_numpy(), return_index=True)
    counts = Counter(DEDUP_REASONS[int(c)] for c in drops.column("reason").to_numpy()[first])
    kept = cand.filter(pa.array(~np.isin(cand.column("order").to_numpy(), dropped_orders)))
    spam_log: list[dict] = []
    if cfg.drop_spam and cfg.spam_learned and kept.num_rows:
        x = _features(kept, note)
        scores, spam = SpamModel.load(cfg.spam_model).decide(x)
        gone = kept.filter(pa.array(spam)).select(["id", "author_id", "text"]).to_pylist()
        spam_log = [{**row, "by": "model", "score": round(float(s), 4)} for row, s in zip(gone, scores[spam])][
            : cfg.max_rejects_logged
        ]
        if spam.any():
            counts["spam_learned"] = int(spam.sum())
        kept = kept.filter(pa.array(~spam))
    write_atomic(kept.select(POSTS.names), out / "posts" / f"{index:06d}.parquet")
    stats = {"kept": kept.num_rows, "dropped": counts, "spam": spam_log}
    return {"index": np.array([index]), "stats": np.array([json.dumps(stats)])}


def _features(kept: pa.Table, note: pa.Table) -> np.ndarray:
    """The learned spam filter's FEATURES for the kept candidates, from the run-wide notes."""
    order = kept.column("order").to_numpy()
    c = note.filter(pc.is_valid(note.column("copies")))
    copies_by_order = dict(zip(c.column("order").to_pylist(), c.column("copies").to_pylist()))
    keys = kept.column("skeleton").to_numpy()
    copies = {int(k): copies_by_order[o] for k, o in zip(keys, order.tolist()) if o in copies_by_order}
    a = note.filter(pc.is_valid(note.column("acct_created")))
    acct = dict(
        zip(
            a.column("order").to_pylist(),
            zip(a.column("acct_created").to_pylist(), a.column("acct_followers").to_pylist()),
        )
    )
    authors = kept.column("author_id").to_pylist()
    users = {au: Account(*acct[o]) for au, o in zip(authors, order.tolist()) if o in acct and au is not None}
    signals = np.array(kept.column("signals").to_pylist(), dtype=np.float32).reshape(-1, len(TEXT_FEATURES))
    x = features(signals, keys, copies, authors, epoch_seconds(kept.column("created_at")), users)
    assert x.shape[1] == len(FEATURES)
    return x
