"""Rebuilding reply threads from reply-to ids and conversation ids."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from roost.corpus.schema import THREADS

MAX_DEPTH = 10_000


def build_threads(ids: pa.Array, reply_to: pa.Array, conversation: pa.Array) -> pa.Table:
    """The threads table (schema THREADS) for posts given as parallel arrays.

    A post's parent is the post it replies to; when that post is not in the
    corpus but its conversation's root is, the root stands in as parent (the
    thread is kept, with the missing middle skipped). A thread is a root with
    at least one reply; a post whose parent chain loops is cut off as a root.
    """
    n = len(ids)
    if n == 0:
        return THREADS.empty_table()
    ids = pc.cast(ids, pa.string())
    parent = pc.index_in(reply_to, value_set=ids).to_numpy(zero_copy_only=False)
    conv = pc.index_in(conversation, value_set=ids).to_numpy(zero_copy_only=False)
    parent = np.where(np.isnan(parent), -1, parent).astype(np.int64)
    conv = np.where(np.isnan(conv), -1, conv).astype(np.int64)
    me = np.arange(n)
    parent = np.where((parent < 0) & (conv >= 0) & (reply_to.is_valid().to_numpy(zero_copy_only=False)), conv, parent)
    parent[parent == me] = -1
    root, depth, cur = me.copy(), np.zeros(n, np.int32), parent.copy()
    active = np.flatnonzero(cur >= 0)
    for _ in range(MAX_DEPTH):
        if not len(active):
            break
        root[active] = cur[active]
        depth[active] += 1
        cur[active] = parent[cur[active]]
        active = active[cur[active] >= 0]
    else:  # cycles: cut the posts still climbing off as roots of their own
        parent[active], root[active], depth[active] = -1, active, 0
    size = np.bincount(root, minlength=n)
    rows = np.flatnonzero(size[root] > 1)
    has_parent = parent[rows] >= 0
    parent_ids = pc.take(ids, pa.array(np.where(has_parent, parent[rows], 0)))
    return pa.table(
        {
            "thread_id": pc.take(ids, pa.array(root[rows])),
            "post_id": pc.take(ids, pa.array(rows)),
            "parent_id": pc.if_else(pa.array(has_parent), parent_ids, pa.nulls(len(rows), pa.string())),
            "depth": pa.array(depth[rows], pa.int32()),
        },
        schema=THREADS,
    )
