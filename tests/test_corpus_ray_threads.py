"""Thread rebuilding as range tasks (run here in a loop, no Ray) gives ``build_threads``'s table exactly:
missing parents with the conversation root stored, replies without a conversation id, a parent in another
conversation, self-replies, loops, a chain longer than ``MAX_DEPTH``, posts spread over several files."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from roost.corpus import ray_threads as rt
from roost.corpus.ray_shuffle import Ranges
from roost.corpus.threads import MAX_DEPTH, build_threads


def loop_tasks(n: int, fn, **kwargs) -> list[dict]:
    import json

    return [json.loads(fn({"part": np.array([p])}, parts=n, **kwargs)["stats"][0]) for p in range(n)]


def _rows(t: pa.Table) -> set[tuple]:
    return {tuple(r.values()) for r in t.to_pylist()}


def _ranged(tmp_path, ids, reply_to, conv, files: int = 3, least: int = 3, most: int = 50) -> tuple[set, int]:
    posts = pa.table(
        {"id": pa.array(ids, pa.string()), "reply_to": pa.array(reply_to, pa.string()), "conversation_id": conv}
    )
    paths = []
    for i, chunk in enumerate(np.array_split(np.arange(len(ids)), files)):
        paths.append(str(tmp_path / f"posts-{i}.parquet"))
        pq.write_table(posts.take(pa.array(chunk, pa.int64())), paths[-1])
    out, count = rt.rebuild_threads(paths, tmp_path / "work", Ranges(least, most), loop_tasks)
    got = pq.read_table(sorted(out.glob("*.parquet"))) if count else pa.table({})
    return (_rows(got) if count else set()), count


def _local(ids, reply_to, conv) -> pa.Table:
    return build_threads(pa.array(ids, pa.string()), pa.array(reply_to, pa.string()), pa.array(conv, pa.string()))


def test_hand_made_cases_match_build_threads(tmp_path):
    posts = [
        ("r", None, "r"),  # a root with a reply chain
        ("a", "r", "r"),
        ("b", "a", "r"),
        ("c", "gone", "r"),  # parent missing, conversation root stored: hangs under r
        ("d", "gone", "nowhere"),  # parent and root missing: a root of its own, alone
        ("x", None, None),  # no conversation id anywhere in this thread
        ("y", "x", None),
        ("z", "y", None),
        ("w", "b", "other"),  # replies into r's thread from another conversation
        ("s", "s", "s"),  # replies to itself
        ("l1", "l2", None),  # a loop, with a post hanging off it
        ("l2", "l1", None),
        ("l3", "l1", None),
        ("q", "gone", "q"),  # its conversation root is itself: a root
        ("q1", "q", None),
        ("lone", None, None),
    ]
    ids, reply_to, conv = (list(c) for c in zip(*posts))
    got, count = _ranged(tmp_path, ids, reply_to, conv)
    want = _local(ids, reply_to, conv)
    assert got == _rows(want) and count == 3
    assert ("r", "c", "r", 1) in got and ("r", "w", "b", 3) in got and ("x", "z", "y", 2) in got
    assert not {r for r in got if r[1] in ("d", "s", "l1", "l2", "l3", "lone")}


def test_a_chain_longer_than_max_depth_is_cut_as_build_threads_cuts_it(tmp_path):
    n = MAX_DEPTH + 3
    ids = [f"p{i}" for i in range(n)]
    reply_to = [None] + ids[:-1]
    got, count = _ranged(tmp_path, ids, reply_to, [None] * n, files=2, least=2, most=4000)
    want = _local(ids, reply_to, [None] * n)
    assert got == _rows(want) and count == 1 and len(got) == MAX_DEPTH + 1


@pytest.mark.parametrize("seed", [0, 1])
def test_random_forests_with_loops_match_build_threads(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n = 400
    ids = [f"{seed}-{i}" for i in rng.permutation(n)]
    parent = rng.integers(-1, n + 50, n)  # >= n: a post not in the corpus
    reply_to = [None if j < 0 else (ids[j] if j < n else f"gone{j}") for j in parent]
    roots = rng.integers(0, n + 50, n)
    conv = [None if rng.random() < 0.3 else (ids[j] if j < n else f"gone{j}") for j in roots]
    got, count = _ranged(tmp_path, ids, reply_to, conv, files=3, least=2, most=200)
    want = _local(ids, reply_to, conv)
    assert got == _rows(want) and len(got) > 50
    assert count == len(set(want.column("thread_id").to_pylist()))


def test_no_posts_no_threads(tmp_path):
    out, count = rt.rebuild_threads([], tmp_path / "work", Ranges(), loop_tasks)
    assert count == 0 and not out.exists()
