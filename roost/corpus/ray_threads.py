"""Thread rebuilding as range tasks (:mod:`ray_shuffle`'s sorted key files), the same table as ``build_threads``.

Why not group by conversation id: a reply may lack one, or name a parent in another conversation, and
``build_threads`` follows the reply-to chain wherever it goes; grouping by conversation would cut such
threads. So the chains themselves are followed, by pointer jumping over the posts keyed by id hash:

1. Keys (one task per posts file): every post by its id key, and for each reply two asks keyed by the
   post it names: its reply-to and its conversation root.
2. Asks (range): an ask is answered when the post it names is stored; answers go back by the asker's key.
3. Resolve (range): a post's parent is its reply-to when stored, else its conversation root (only for a
   reply), never itself; a post without a parent is a root, done at depth 0.
4. Rounds of pointer jumping, each a join range stage (a pointer's target answers with its own pointer,
   distance, done) and an update range stage (take the target's pointer, add its distance). A post's
   pointer doubles its reach each round, so ``MAX_DEPTH.bit_length()`` rounds settle every chain of at
   most ``MAX_DEPTH`` posts; what is still climbing then (a loop, or a longer chain) is cut off, as
   ``build_threads`` cuts it. The rounds stop early when nothing climbs.
5. Group (range, by root key): a root with at least one settled reply is a thread; its rows are written.

Each stage's task holds one key range of its inputs, so no process holds the corpus; the driver holds
only counts. ``run_tasks(n, fn, **kwargs)`` runs ``fn`` for the ``n`` ranges (Ray tasks in the Ray engine,
a loop in tests) and returns the tasks' counts.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from roost.corpus.ray_shuffle import Ranges, read_range, str_keys, write_sorted
from roost.corpus.ray_stages import write_atomic
from roost.corpus.schema import THREADS
from roost.corpus.threads import MAX_DEPTH

ROUNDS = MAX_DEPTH.bit_length()  # 2**ROUNDS > MAX_DEPTH: a chain still climbing after them is cut
REPLY, CONV = 0, 1  # what an ask names: the post replied to, the conversation's root
K = pa.uint64()
IDS = pa.schema([("key", K), ("id", pa.string())])
ASKS = pa.schema([("key", K), ("post", pa.string()), ("ikey", K), ("target", pa.string()), ("kind", pa.int8())])
FOUND = pa.schema([("key", K), ("post", pa.string()), ("target", pa.string()), ("tkey", K), ("kind", pa.int8())])
STATE = pa.schema(
    [
        ("key", K),
        ("id", pa.string()),
        ("parent", pa.string()),
        ("cur", pa.string()),  # the post's pointer: an ancestor, the root once done
        ("ckey", K),
        ("dist", pa.int64()),  # how far up the pointer is
        ("done", pa.bool_()),  # the pointer is the root
    ]
)
REQUESTS = pa.schema([("key", K), ("id", pa.string()), ("ikey", K), ("cur", pa.string())])
ANSWERS = pa.schema(
    [("key", K), ("id", pa.string()), ("cur2", pa.string()), ("ckey2", K), ("dist2", pa.int64()), ("done2", pa.bool_())]
)
MEMBERS = pa.schema(
    [("key", K), ("root", pa.string()), ("id", pa.string()), ("parent", pa.string()), ("depth", pa.int64())]
)
RunTasks = Callable[..., list[dict]]


def rebuild_threads(posts: list[str], work: Path, parts: Ranges, run_tasks: RunTasks) -> tuple[Path, int]:
    """The threads of the posts in ``posts`` (Parquet files with id, reply_to, conversation_id), as
    ``build_threads`` gives them, written under ``work/out/``; returns that folder and the thread count."""
    out = work / "out"
    if not posts:
        return out, 0
    counts = run_tasks(len(posts), key_posts, posts=posts, work=str(work))
    n_posts = sum(c["posts"] for c in counts)
    n_asks = sum(c["asks"] for c in counts)
    run_tasks(parts.count(n_posts + n_asks), answer_asks, work=str(work))
    counts = run_tasks(parts.count(n_posts + n_asks), resolve, work=str(work))
    active = sum(c["active"] for c in counts)
    for k in range(ROUNDS):
        if not active:
            break
        n = parts.count(n_posts + active)
        run_tasks(n, join_round, work=str(work), k=k)
        active = sum(c["active"] for c in run_tasks(n, update_round, work=str(work), k=k))
        for d in (f"state{k}", f"req{k}", f"ans{k}"):
            shutil.rmtree(work / d, ignore_errors=True)
    counts = run_tasks(parts.count(n_posts), group, work=str(work))
    return out, sum(c["threads"] for c in counts)


def _files(work: str, d: str) -> list[str]:
    return [str(f) for f in sorted((Path(work) / d).glob("*.parquet"))]


def _done(p: int, **counts: int) -> dict:
    return {"part": np.array([p]), "stats": np.array([json.dumps(counts)])}


def key_posts(batch: dict, parts: int, posts: list[str], work: str) -> dict:
    """Map task for posts file ``p``: its posts by id key, and its replies' asks by the key of the post
    each names (reply-to; conversation root, when there is one)."""
    p = int(batch["part"][0])
    t = pq.read_table(posts[p], columns=["id", "reply_to", "conversation_id"])
    ids = pc.cast(t.column("id"), pa.string()).combine_chunks()
    ikeys = pa.array(str_keys(ids.to_pylist()), K)
    name = f"{p:06d}.parquet"
    write_sorted(pa.table([ikeys, ids], schema=IDS), Path(work) / "ids" / name)
    replies = pc.is_valid(t.column("reply_to"))
    asks = []
    for kind, col in ((REPLY, "reply_to"), (CONV, "conversation_id")):
        m = pc.and_(replies, pc.is_valid(t.column(col)))
        target = pc.cast(t.column(col).filter(m), pa.string()).combine_chunks()
        asks.append(
            pa.table(
                [
                    pa.array(str_keys(target.to_pylist()), K),
                    ids.filter(m),
                    ikeys.filter(m),
                    target,
                    pa.array(np.full(len(target), kind, np.int8)),
                ],
                schema=ASKS,
            )
        )
    a = pa.concat_tables(asks)
    write_sorted(a, Path(work) / "asks" / name)
    return _done(p, posts=t.num_rows, asks=a.num_rows)


def answer_asks(batch: dict, parts: int, work: str) -> dict:
    """Range task: the asks in range ``p`` whose named post is stored, sent back by the asker's key."""
    p = int(batch["part"][0])
    ids = read_range(_files(work, "ids"), IDS, p, parts)
    asks = read_range(_files(work, "asks"), ASKS, p, parts)
    hit = asks.filter(pc.is_in(asks.column("target"), value_set=ids.column("id")))
    found = pa.table(
        [hit.column("ikey"), hit.column("post"), hit.column("target"), hit.column("key"), hit.column("kind")],
        schema=FOUND,
    )
    write_sorted(found, Path(work) / "found" / f"{p:05d}.parquet")
    return _done(p, found=found.num_rows)


def resolve(batch: dict, parts: int, work: str) -> dict:
    """Range task: each post's parent (its reply-to when stored, else its conversation root; never itself),
    the first state of the pointer jumping, and the roots as members of their own threads."""
    p = int(batch["part"][0])
    ids = read_range(_files(work, "ids"), IDS, p, parts)
    found = read_range(_files(work, "found"), FOUND, p, parts)
    t = ids
    for kind in (REPLY, CONV):
        f = found.filter(pc.equal(found.column("kind"), kind)).select(["post", "target", "tkey"])
        t = t.join(f.rename_columns(["id", f"t{kind}", f"k{kind}"]), keys="id", join_type="left outer")
    parent = pc.coalesce(t.column(f"t{REPLY}"), t.column(f"t{CONV}"))
    pkey = pc.coalesce(t.column(f"k{REPLY}"), t.column(f"k{CONV}"))
    orphan = pc.fill_null(pc.equal(parent, t.column("id")), False)  # a post naming itself has no parent
    parent = pc.if_else(orphan, pa.scalar(None, pa.string()), parent)
    root = pc.is_null(parent)
    state = pa.table(
        [
            t.column("key"),
            t.column("id"),
            parent,
            pc.coalesce(parent, t.column("id")),
            pc.if_else(root, t.column("key"), pkey),
            pc.if_else(root, 0, 1).cast(pa.int64()),
            root,
        ],
        schema=STATE,
    )
    return _step(p, work, state, state.filter(root), "state0", "req0")


def _step(p: int, work: str, state: pa.Table, settled: pa.Table, state_dir: str, req_dir: str) -> dict:
    """Writes a round's state, the requests of its posts still climbing, and the posts it settled."""
    name = f"{p:05d}.parquet"
    write_sorted(state, Path(work) / state_dir / name)
    climbing = state.filter(pc.invert(state.column("done")))
    req = pa.table(
        [climbing.column("ckey"), climbing.column("id"), climbing.column("key"), climbing.column("cur")],
        schema=REQUESTS,
    )
    write_sorted(req, Path(work) / req_dir / name)
    kept = settled.filter(pc.less_equal(settled.column("dist"), MAX_DEPTH))
    members = pa.table(
        [kept.column("ckey"), kept.column("cur"), kept.column("id"), kept.column("parent"), kept.column("dist")],
        schema=MEMBERS,
    )
    write_sorted(members, Path(work) / "members" / f"{state_dir}-{name}")
    return _done(p, active=climbing.num_rows)


def join_round(batch: dict, parts: int, work: str, k: int) -> dict:
    """Range task of round ``k``: each request for a post in range ``p`` is answered with that post's
    pointer, distance and done flag, sent back by the requester's key."""
    p = int(batch["part"][0])
    state = read_range(_files(work, f"state{k}"), STATE, p, parts)
    req = read_range(_files(work, f"req{k}"), REQUESTS, p, parts)
    target = state.select(["id", "cur", "ckey", "dist", "done"]).rename_columns(
        ["cur", "cur2", "ckey2", "dist2", "done2"]
    )
    j = req.join(target, keys="cur", join_type="inner")
    ans = j.select(["ikey", "id", "cur2", "ckey2", "dist2", "done2"]).rename_columns(ANSWERS.names)
    write_sorted(ans.cast(ANSWERS), Path(work) / f"ans{k}" / f"{p:05d}.parquet")
    return _done(p, answers=ans.num_rows)


def update_round(batch: dict, parts: int, work: str, k: int) -> dict:
    """Range task of round ``k``: posts in range ``p`` still climbing take their target's pointer and add
    its distance; those it reaches the root for are settled."""
    p = int(batch["part"][0])
    state = read_range(_files(work, f"state{k}"), STATE, p, parts)
    ans = read_range(_files(work, f"ans{k}"), ANSWERS, p, parts).drop_columns(["key"])
    j = state.join(ans, keys="id", join_type="left outer")
    got = pc.is_valid(j.column("done2"))
    new = pa.table(
        [
            j.column("key"),
            j.column("id"),
            j.column("parent"),
            pc.if_else(got, j.column("cur2"), j.column("cur")),
            pc.if_else(got, j.column("ckey2"), j.column("ckey")),
            pc.add(j.column("dist"), pc.fill_null(j.column("dist2"), 0)),
            pc.fill_null(j.column("done2"), j.column("done")),
        ],
        schema=STATE,
    )
    settled = new.filter(pc.and_(got, new.column("done")))
    return _step(p, work, new, settled, f"state{k + 1}", f"req{k + 1}")


def group(batch: dict, parts: int, work: str) -> dict:
    """Range task by root key: the settled posts of every root in range ``p``; a root with a reply is a
    thread, whose rows are written."""
    p = int(batch["part"][0])
    m = read_range(_files(work, "members"), MEMBERS, p, parts)
    size = m.group_by("root").aggregate([("id", "count")])
    roots = size.filter(pc.greater(size.column("id_count"), 1)).column("root")
    t = m.filter(pc.is_in(m.column("root"), value_set=roots))
    threads = pa.table(
        [t.column("root"), t.column("id"), t.column("parent"), t.column("depth").cast(pa.int32())], schema=THREADS
    )
    write_atomic(threads, Path(work) / "out" / f"{p:05d}.parquet")
    return _done(p, threads=len(roots))
