"""Crash-safe Parquet shards: written under a hidden temporary name, renamed into place when complete."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from roost.workspace import _fsync_dir


class ShardWriter:
    """Writes ``{table}-{run}-{n:05d}.parquet`` shards of at most ``rows_per_shard`` rows.

    Readers glob ``{table}-*.parquet``, so a shard being written (``.{name}.tmp``)
    is invisible until its rename; a crash leaves at worst a hidden temp file.
    """

    def __init__(self, folder: Path, table: str, schema: pa.Schema, run: str, rows_per_shard: int = 500_000):
        self.folder, self.table, self.schema, self.run = Path(folder), table, schema, run
        self.rows_per_shard = rows_per_shard
        self.files: list[str] = []
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._rows = 0
        self.rows = 0

    def _final(self) -> Path:
        return self.folder / f"{self.table}-{self.run}-{len(self.files):05d}.parquet"

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        while batch.num_rows:
            if self._writer is None:
                self._tmp = self.folder / f".{self._final().name}.tmp"
                self._writer = _parquet_writer(self._tmp, self.schema)
            take = min(batch.num_rows, self.rows_per_shard - self._rows)
            self._writer.write(batch.slice(0, take))
            self._rows += take
            self.rows += take
            batch = batch.slice(take)
            if self._rows >= self.rows_per_shard:
                self._seal()

    def _seal(self) -> None:
        assert self._writer is not None and self._tmp is not None
        self._writer.close()
        with open(self._tmp, "rb") as f:
            os.fsync(f.fileno())
        final = self._final()
        os.replace(self._tmp, final)
        self.files.append(final.name)
        self._writer, self._tmp, self._rows = None, None, 0

    def close(self) -> list[str]:
        """Seal the last shard; returns the file names written (relative to the folder)."""
        if self._writer is not None:
            self._seal()
        _fsync_dir(self.folder)
        return self.files

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._tmp.unlink(missing_ok=True)
            self._writer = None


def _parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    # dictionary-encode only the columns with few distinct values (ids and texts gain nothing)
    dict_cols = [c for c in ("lang", "source", "author_id") if c in schema.names]
    return pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=dict_cols)


def rewrite_shard(path: Path, table: pa.Table) -> None:
    """Replace a sealed shard's rows with ``table`` (same schema), atomically: readers see the old or the new."""
    tmp = path.with_name(f".{path.name}.tmp")
    with _parquet_writer(tmp, table.schema) as w:
        w.write_table(table)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
