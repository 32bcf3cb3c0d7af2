"""Stored dedup keys: Parquet folders of uint64 keys that both ingest engines read and append to.

Each run writes only the keys it added, under ``dedup-<run>/{ids,texts,bands}/``; the manifest's
``dedup_state`` lists every run's folders with the near-dup settings the band keys were made with. The
local engine loads them into its hash tables; the Ray engine reads them as datasets and shuffles them
with the new keys, so no process ever holds them all. A workspace from before this format (one
``dedup-<run>.npz``) is converted on its next ingest.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

KINDS = ("ids", "texts", "bands")
KEY_SCHEMA = pa.schema([("key", pa.uint64())])


def _as_str(params: dict) -> dict[str, str]:
    return {k: str(v) for k, v in sorted(params.items())}


def _check(stored: dict, params: dict, where: Path) -> None:
    wanted = _as_str(params)
    if stored != wanted:
        raise ValueError(
            f"{where}: the stored posts were deduplicated with {stored}, this ingest asks for {wanted}; "
            "near duplicates could not be found across the two. Ingest with the same near-dup settings "
            "(or into a new workspace)"
        )


def stored_state(folder: Path, entry: dict | str | None, params: dict) -> dict[str, list[str]]:
    """The key folders (relative to ``folder``) of every earlier run, after checking the settings match."""
    if entry is None:
        return {k: [] for k in KINDS}
    if isinstance(entry, str):  # the single-file state of earlier roost versions
        return _convert_npz(folder, entry, params)
    _check(entry["params"], params, folder / "manifest.json")
    return {k: list(entry[k]) for k in KINDS}


def state_entry(params: dict, dirs: dict[str, list[str]]) -> dict:
    """The manifest's ``dedup_state``."""
    return {"params": _as_str(params), **{k: dirs[k] for k in KINDS}}


def listed_names(entry: dict | str | None) -> set[str]:
    """Top-level names in the corpus folder a manifest's dedup state owns (so crash cleanup keeps them)."""
    if entry is None:
        return set()
    if isinstance(entry, str):
        return {entry}
    return {d.split("/", 1)[0] for k in KINDS for d in entry[k]}


def write_keys(folder: Path, run: str, kind: str, keys: np.ndarray) -> str:
    """One Parquet file of this run's new ``kind`` keys; returns its folder, relative to ``folder``."""
    rel = f"dedup-{run}/{kind}"
    out = folder / rel
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"key": pa.array(keys, pa.uint64())}), out / "part-00000.parquet")
    return rel


def read_keys(folder: Path, dirs: list[str]) -> np.ndarray:
    """All keys in these folders, in one array (the local engine's hash tables are built from it)."""
    files = [str(f) for d in dirs for f in sorted((folder / d).glob("*.parquet"))]
    if not files:
        return np.zeros(0, np.uint64)
    col = ds.dataset(files, format="parquet", schema=KEY_SCHEMA).to_table().column("key")
    return col.to_numpy().astype(np.uint64, copy=False)


def remove_unlisted(folder: Path, keep: set[str]) -> None:
    """Key folders of crashed runs (never listed in a manifest)."""
    for p in folder.glob("dedup-*"):
        if p.is_dir() and p.name not in keep:
            shutil.rmtree(p)


def _convert_npz(folder: Path, name: str, params: dict) -> dict[str, list[str]]:
    with np.load(folder / name) as z:
        _check({k: v for k, v in z["params"].tolist()}, params, folder / name)
        run = "migrated-" + Path(name).stem.removeprefix("dedup-")
        return {k: [write_keys(folder, run, k, z[k])] for k in KINDS}
