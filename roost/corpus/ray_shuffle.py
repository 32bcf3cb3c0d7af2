"""The Ray engine's shuffles: key ranges exchanged through the staging folder, one Ray task per range.

Why not Ray Data's hash shuffle: each one starts aggregator actors and moves every row through the
object store and their heaps; at 100k posts on 2 cores its four shuffles took 40-60 s of a 70 s run, and
the aggregators' memory grew with the corpus (BENCHMARKS.md, "Ingest on Ray"). The keys shuffled here are
64-bit hashes, uniform over their range, so cutting the range into equal slices balances partitions as
hashing would, and a slice can be *read* rather than sent: every task writes its keys sorted by key in
small row groups, and the task for slice ``p`` reads each file with a filter, which skips the other
slices' row groups by their min/max statistics. So a shuffle costs one sorted write and one filtered read
of the keys, and a task holds one slice (at most ``PARTITION_ROWS`` rows) whatever the corpus's size.

The staging folder is already shared by every node (the read tasks stage there and the finish tasks read
it). A range task names its outputs by its range and writes them under a temporary name first
(:func:`ray_stages.write_atomic`), so a task Ray retries replaces its first attempt's output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import xxhash

from roost.corpus.dedup import NEAR_DUP
from roost.corpus.dedup_store import KEY_SCHEMA
from roost.corpus.ray_stages import (
    NOTES,
    POST,
    USER,
    accounts_partition,
    bands_partition,
    copies_partition,
    judge_partition,
    notes,
    write_atomic,
)
from roost.corpus.schema import USERS

ROW_GROUP = 16_384  # rows a sorted key file's row group holds: what a range read reads beyond its slice
PARTITION_ROWS = 500_000  # rows a range task holds at most: worker memory stays flat as the corpus grows
BANDS = pa.list_(pa.uint64())
# what each dedup stage reads: the key it judges, the post's order, what later stages need
STAGE_SCHEMA = {
    "ids": pa.schema([("key", pa.uint64()), ("order", pa.int64()), ("text_hash", pa.uint64()), ("bands", BANDS)]),
    "texts": pa.schema([("key", pa.uint64()), ("order", pa.int64()), ("bands", BANDS)]),
    "bands": pa.schema([("key", pa.uint64()), ("order", pa.int64())]),
}
AUTHORS = pa.schema([("key", pa.uint64()), ("order", pa.int64()), ("author_id", pa.string())])  # posts by account
SKELETONS = pa.schema([("key", pa.uint64()), ("order", pa.int64()), ("author_key", pa.uint64())])
KEYED_USERS = pa.schema([("key", pa.uint64()), ("order", pa.int64())] + list(USERS))


def str_keys(values: list[str]) -> np.ndarray:
    """A user id's key: the hash ``spam.author_keys`` gives a post's account, so users and posts meet."""
    return np.fromiter((xxhash.xxh3_64_intdigest(v.encode()) for v in values), np.uint64, len(values))


@dataclass
class Ranges:
    """How a stage is cut: into at least ``least`` key ranges (work for every CPU), of at most ``most_rows``
    rows each (what bounds a range task's memory)."""

    least: int = 2
    most_rows: int = PARTITION_ROWS

    def count(self, rows: int) -> int:
        return max(self.least, -(-rows // self.most_rows))


def bounds(p: int, parts: int) -> tuple[int, int | None]:
    """Slice ``p`` of ``parts`` of the uint64 key range: [lo, hi), hi None for the last."""
    return (p << 64) // parts, None if p == parts - 1 else ((p + 1) << 64) // parts


def write_sorted(t: pa.Table, path: Path, by: str = "key") -> int:
    """``t`` sorted by ``by`` in small row groups (so range reads skip the rest); returns its rows."""
    write_atomic(t.sort_by(by), path, row_group_size=ROW_GROUP)
    return t.num_rows


def read_where(files: list[str], schema: pa.Schema, where: pc.Expression) -> pa.Table:
    """The rows of ``files`` that ``where`` holds for (row groups whose statistics exclude it are skipped)."""
    if not files:
        return schema.empty_table()
    return ds.dataset(files, schema=schema, format="parquet").to_table(filter=where)


def read_range(files: list[str], schema: pa.Schema, p: int, parts: int) -> pa.Table:
    lo, hi = bounds(p, parts)
    where = pc.field("key") >= pa.scalar(lo, pa.uint64())
    if hi is not None:
        where = where & (pc.field("key") < pa.scalar(hi, pa.uint64()))
    return read_where(files, schema, where)


def _stats(p: int, **counts: int) -> dict:
    return {"part": np.array([p]), "stats": np.array([json.dumps(counts)])}


def dedup_range(
    batch: dict,
    kind: str,
    code: int,
    parts: int,
    inputs: list[str],
    stored: list[str],
    staging: str,
    keys_out: str,
    nxt: str | None,
) -> dict:
    """Range task of one dedup stage: judges slice ``p`` of the candidates' ``kind`` keys against the stored
    ones and each other (``judge_partition``, ``bands_partition``); writes the dropped posts as notes, the
    keys this run adds, and the survivors' keys for the ``nxt`` stage. Returns the rows it passed on."""
    p = int(batch["part"][0])
    schema = STAGE_SCHEMA[kind]
    new = read_range(inputs, schema, p, parts)
    old = read_range(stored, KEY_SCHEMA, p, parts)
    stored_order = pa.array(np.full(old.num_rows, -1, np.int64))  # a stored key comes before every candidate
    cols = {"key": old.column("key"), "order": stored_order}
    t = pa.concat_tables([new, pa.table({f.name: cols.get(f.name, pa.nulls(old.num_rows, f.type)) for f in schema})])
    out = Path(staging)
    name = f"{p:05d}.parquet"
    if kind == "bands":
        j = bands_partition(t)
        dropped = np.unique(j.column("order").to_numpy()[j.column("dominated").to_numpy(zero_copy_only=False)])
        write_sorted(
            notes(dropped, reason=np.full(len(dropped), NEAR_DUP, np.int8)), out / "notes" / kind / name, "order"
        )
        write_sorted(j.filter(j.column("new")).select(["key"]), Path(keys_out) / name)
        return _stats(p, passed=0)
    j = judge_partition(t, code)
    verdict = j.column("verdict").to_numpy()
    gone = j.column("order").to_numpy()[verdict == code]
    write_sorted(notes(gone, reason=np.full(len(gone), code, np.int8)), out / "notes" / kind / name, "order")
    live = j.filter(pa.array(verdict == 0))
    write_sorted(live.select(["key"]), Path(keys_out) / name)
    if nxt == "texts":
        passed = write_sorted(
            live.select(["text_hash", "order", "bands"]).rename_columns(STAGE_SCHEMA[nxt].names),
            out / "keys" / nxt / name,
        )
    elif nxt == "bands":
        passed = write_sorted(explode_bands(live), out / "keys" / nxt / name)
    else:
        passed = 0
    return _stats(p, passed=passed)


def explode_bands(t: pa.Table) -> pa.Table:
    """(band key, order) for every band of every post."""
    bands = t.column("bands").combine_chunks()
    lengths = pc.list_value_length(bands).to_numpy(zero_copy_only=False)
    order = np.repeat(t.column("order").to_numpy(), lengths)
    return pa.table({"key": pc.list_flatten(bands), "order": pa.array(order, pa.int64())})


def people_range(
    batch: dict, parts: int, users: list[str], authors: list[str], skeletons: list[str], staging: str
) -> dict:
    """Range task of the users and spam-signals stage: users and posts of the accounts in slice ``p`` of
    the user-id keys (the run's new users; each post's account), and posts of the skeleton keys in the
    same slice (how many accounts posted the same text). Writes notes and new users."""
    p = int(batch["part"][0])
    u = read_range(users, KEYED_USERS, p, parts)
    a = read_range(authors, AUTHORS, p, parts)
    n = a.num_rows
    posts = pa.table(
        {
            "key": a.column("author_id"),
            "order": a.column("order"),
            "kind": pa.array(np.full(n, POST, np.int8)),
            **{f.name: pa.nulls(n, f.type) for f in USERS},
        }
    )
    rows = (
        u.drop_columns(["key"])
        .add_column(0, "key", u.column("id"))
        .add_column(2, "kind", pa.array(np.full(u.num_rows, USER, np.int8)))
    )
    out = Path(staging)
    name = f"{p:05d}.parquet"
    acc = accounts_partition(pa.concat_tables([rows.select(posts.column_names).cast(posts.schema), posts]))
    new_users = acc.filter(pc.is_null(acc.column("order"))).select(USERS.names).cast(USERS)
    write_atomic(new_users, out / "users_out" / name)
    note = acc.filter(pc.is_valid(acc.column("order"))).select(NOTES.names)
    sk = read_range(skeletons, SKELETONS, p, parts)
    if sk.num_rows:
        note = pa.concat_tables([note, copies_partition(sk).select(NOTES.names)])
    write_sorted(note, out / "notes" / "people" / name, "order")
    return _stats(p, users=new_users.num_rows)


def stage_keys(cand: pa.Table | None, users: pa.Table, out: Path, index: int, learned: bool) -> None:
    """A source's rows for the shuffles, each file sorted by its key: candidates by id hash (with the text
    hash and bands later stages judge), its users by id key, and for the learned spam filter its posts by
    account key and by skeleton key."""
    name = f"{index:06d}.parquet"
    write_sorted(users.add_column(0, "key", pa.array(str_keys(users.column("id").to_pylist()))), out / "users" / name)
    if cand is None:
        return
    ids = cand.select(["id_hash", "order", "text_hash", "bands"]).rename_columns(STAGE_SCHEMA["ids"].names)
    write_sorted(ids.cast(STAGE_SCHEMA["ids"]), out / "keys" / "ids" / name)
    if learned:
        a = cand.filter(pc.is_valid(cand.column("author_id")))
        write_sorted(
            pa.table([a.column("author_key"), a.column("order"), a.column("author_id")], schema=AUTHORS),
            out / "keys" / "authors" / name,
        )
        s = cand.filter(pc.not_equal(cand.column("skeleton"), pa.scalar(0, pa.uint64())))  # 0: too short to say
        write_sorted(
            pa.table([s.column("skeleton"), s.column("order"), s.column("author_key")], schema=SKELETONS),
            out / "keys" / "skeletons" / name,
        )


def key_stored_users(batch: dict, staging: str) -> dict:
    """Map task: one stored users file -> its users by id key, sorted, at order -1 (before this run's)."""
    j, path = int(batch["part"][0]), str(batch["path"][0])
    u = ds.dataset([path], schema=USERS, format="parquet").to_table()
    u = u.add_column(0, "order", pa.array(np.full(u.num_rows, -1, np.int64)))
    u = u.add_column(0, "key", pa.array(str_keys(u.column("id").to_pylist())))
    write_sorted(u.cast(KEYED_USERS), Path(staging) / "users_stored" / f"{j:06d}.parquet")
    return _stats(j, users=u.num_rows)
