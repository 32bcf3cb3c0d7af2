"""The Ray engine's range shuffle without Ray: key ranges cover the uint64 keys once, a range read over
sorted files returns exactly its keys (and skips other ranges' row groups), unsorted files still work."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from roost.corpus import ray_shuffle as sh

TOP = (1 << 64) - 1


@pytest.mark.parametrize("parts", [1, 2, 3, 7, 64])
def test_ranges_cover_every_key_once(parts):
    b = [sh.bounds(p, parts) for p in range(parts)]
    assert b[0][0] == 0 and b[-1][1] is None
    assert all(b[p][1] == b[p + 1][0] and b[p][0] < b[p + 1][0] for p in range(parts - 1))


def test_range_reads_return_each_key_once(tmp_path):
    rng = np.random.default_rng(0)
    files = []
    for i in range(3):
        keys = rng.integers(0, TOP, 5000, dtype=np.uint64, endpoint=True)
        keys[:2] = [0, TOP]  # the edges of the key range
        sh.write_sorted(pa.table({"key": keys, "order": np.arange(5000) + i * 5000}), tmp_path / f"{i}.parquet")
        files.append(str(tmp_path / f"{i}.parquet"))
    schema = sh.STAGE_SCHEMA["bands"]
    parts = 5
    seen = []
    for p in range(parts):
        t = sh.read_range(files, schema, p, parts)
        lo, hi = sh.bounds(p, parts)
        k = t.column("key").to_pylist()
        assert all(lo <= x and (hi is None or x < hi) for x in k)
        seen += t.column("order").to_pylist()
    assert sorted(seen) == list(range(15000))
    written = pq.read_table(files[0]).column("key").to_numpy()
    assert (np.diff(written.astype(np.float64)) >= 0).all() and written[0] == 0 and written[-1] == TOP
    assert sh.read_range([], schema, 0, parts).num_rows == 0


def test_a_range_read_skips_other_ranges_row_groups(tmp_path):
    keys = np.sort(np.random.default_rng(1).integers(0, TOP, 8 * sh.ROW_GROUP, dtype=np.uint64))
    sh.write_sorted(pa.table({"key": keys, "order": np.arange(len(keys))}), tmp_path / "k.parquet")
    assert pq.read_metadata(tmp_path / "k.parquet").num_row_groups == 8
    import pyarrow.dataset as ds

    d = ds.dataset([str(tmp_path / "k.parquet")], format="parquet")
    lo, hi = sh.bounds(0, 8)
    where = (ds.field("key") >= pa.scalar(lo, pa.uint64())) & (ds.field("key") < pa.scalar(hi, pa.uint64()))
    fragments = [rg for f in d.get_fragments(filter=where) for rg in f.split_by_row_group(filter=where)]
    assert 1 <= len(fragments) <= 2  # of 8 row groups, only those whose min/max can hold range 0


def test_unsorted_files_are_read_whole_and_filtered(tmp_path):
    keys = np.array([TOP, 5, 1 << 63, 0, 42], np.uint64)  # as the local engine stores them: unsorted
    pq.write_table(pa.table({"key": keys}), tmp_path / "local.parquet")
    got = [sh.read_range([str(tmp_path / "local.parquet")], pa.schema([("key", pa.uint64())]), p, 2) for p in (0, 1)]
    assert sorted(got[0].column("key").to_pylist()) == [0, 5, 42]
    assert sorted(got[1].column("key").to_pylist()) == [1 << 63, TOP]


def test_ranges_hold_at_most_their_rows():
    r = sh.Ranges(least=4, most_rows=100)
    assert r.count(0) == 4 and r.count(400) == 4 and r.count(401) == 5 and r.count(10_000) == 100
