"""``roost ingest --engine ray``: the local engine's ingest as Ray Data jobs, same result on the same input.

1. Read: one task per source file runs the shared per-post code (``BatchProcessor``) and stages the
   file's candidates, users and logs (:func:`ray_stages.read_source`).
2. Dedup, global: candidates' id hashes with the stored ids are hash-partitioned by key, and in each
   partition a post is a duplicate when a stored post or an earlier one has its key; the survivors' text
   hashes likewise, then their MinHash LSH band keys (a near duplicate shares a band with an earlier
   post). Stored keys are Parquet read as datasets, so no process holds them all; each run writes the
   keys it added (:mod:`roost.corpus.dedup_store`, the local engine's format too).
3. Users and spam signals, one shuffle: the users table and the candidates by author (new users; each
   post's account) and the candidates by skeleton key (how many accounts posted the same text).
4. Finish: one task per source drops what 2 and 3 noted and writes its posts; the driver renames the
   files into the corpus and commits the manifest (``ingest.finish``: threads, logs, accounting).

The driver holds per-source counts, the (capped) logs and the moderation labels. Thread rebuilding
still reads the posts' id and reply columns into the driver, as the local engine does.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from roost.corpus import ray_stages as st
from roost.corpus.config import IngestConfig
from roost.corpus.dedup import DUP_ID, DUP_TEXT, NEAR_DUP
from roost.corpus.dedup_store import KEY_SCHEMA, KINDS
from roost.corpus.ingest import STAGING_PREFIX, IngestReport, _locked, begin, finish
from roost.corpus.minhash import MinHasher
from roost.corpus.remote import expand
from roost.corpus.schema import MODERATION_LOG, USERS, table_files
from roost.workspace import Workspace

KEYS = pa.schema([("key", pa.uint64()), ("order", pa.int64())])  # order -1: a stored key
CARRIED = {"text_hash": pa.uint64(), "bands": pa.list_(pa.uint64())}  # what the id and text stages pass on
PEOPLE = pa.schema(
    [("key", pa.string()), ("order", pa.int64()), ("kind", pa.int8()), ("author_key", pa.uint64())] + list(USERS)
)  # users, posts by author and posts by skeleton key, in one shuffle
PARTITION_ROWS = 500_000  # rows a shuffle partition holds at most: worker memory stays flat as the corpus grows


def ingest_ray(
    sources: list[str],
    workspace: Workspace,
    config: IngestConfig | None = None,
    address: str | None = None,
    progress: bool = True,
    partitions: int = 0,
    on_batch: Callable[[str, int], None] | None = None,
) -> IngestReport:
    """Ingest ``sources`` (paths or fsspec URLs) on a Ray cluster into ``workspace/corpus/``.

    ``address``: the cluster (default: a connected one, else ``RAY_ADDRESS``, else a Ray started here).
    ``partitions``: hash partitions of each shuffle (0: two per CPU of the cluster). ``on_batch(source, i)``
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
        # hash shuffle (actors) partitions by key as SHUFFLE_V2 does, with ~3 s instead of ~9 s fixed cost a
        # shuffle on a 2-core box (measured, Ray 2.60)
        ctx.shuffle_strategy = ray.data.context.ShuffleStrategy.HASH_SHUFFLE
        if min((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=0) < 4:
            # Ray gives each shuffle aggregator a share of a CPU; on nodes of one or two CPUs those shares
            # leave no whole CPU for the shuffle's map tasks and the job waits forever (seen with 2 x 1 CPU)
            ctx.hash_shuffle_operator_actor_num_cpus_override = 0
        parts = partitions or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))  # the fewest a shuffle gets
        with _locked(workspace.corpus):
            return _run(files, workspace, cfg, parts, on_batch)
    finally:
        if started:
            ray.shutdown()


def _run(
    files: list[str], workspace: Workspace, cfg: IngestConfig, parts: int, on_batch: Callable[[str, int], None] | None
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

    cand = sorted(str(f) for f in (staging / "cand").glob("*.parquet"))
    new_state = _dedup(r.folder, r.state, cand, staging, cfg, parts, r.run) if cand else {k: [] for k in KINDS}
    new_users = _accounts_and_copies(r.folder, cand, staging, cfg, parts)

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
    if new_users is not None:
        new_users.write_parquet(str(staging / "users_out"))
    new["users"] = _move(staging / "users_out", r.folder, "users", r.run)
    report.users_added = sum(_rows(r.folder / f) for f in new["users"])
    state = {k: r.state[k] + new_state[k] for k in KINDS}
    finish(workspace, r, cfg, report, {s["source"]: s["hash"] for s in stats}, new, state, logs)
    shutil.rmtree(staging, ignore_errors=True)
    return report


def _keys(folder: Path, dirs: list[str]):
    """Stored keys of one kind as a dataset of (key, order -1); None when there are none (Ray's shuffle
    does not take an empty input's schema-less blocks)."""
    import ray

    files = _files(folder, dirs)
    if not files:
        return None
    return ray.data.read_parquet(files, schema=KEY_SCHEMA).map_batches(_stored, batch_format="pyarrow")


def _stored(t: pa.Table) -> pa.Table:
    return t.append_column("order", pa.array(np.full(t.num_rows, -1, np.int64)))


def _by_key(datasets: list, schema: pa.Schema, parts: int, fn, files: list[str], **kwargs):
    """Hash-partition the union by ``key`` (Ray keeps each partition in one block, as its groupby relies on)
    and run ``fn`` on each whole partition. ``files``: the Parquet files the rows come from (their row
    counts, times ``per_row``, set how many partitions: at least ``parts``, at most PARTITION_ROWS rows each)."""
    per_row = kwargs.pop("per_row", 1)
    datasets = [d for d in datasets if d is not None]
    datasets = [
        d.map_batches(lambda t: t.select(schema.names).cast(schema), batch_format="pyarrow") for d in datasets
    ]  # one schema, whatever Parquet made of list field names or empty inputs
    ds = datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]
    rows = per_row * sum(_rows(Path(f)) for f in files)
    n = max(parts, -(-rows // PARTITION_ROWS))
    return ds.repartition(n, keys=["key"]).map_batches(fn, batch_size=None, batch_format="pyarrow", fn_kwargs=kwargs)


def _files(folder: Path, dirs: list[str]) -> list[str]:
    return [str(f) for d in dirs for f in sorted((folder / d).glob("*.parquet"))]


def hasher_bands(cfg: IngestConfig) -> int:
    """LSH bands a post has (MinHashLSH's optimal layout for the threshold and permutations)."""
    return MinHasher(cfg.num_perm, cfg.near_dup_threshold, cfg.shingle_words, cfg.minhash_seed).bands


def _select(ds, **cols: str):
    """A dataset of ``cols`` (new name -> source column or expression) in pyarrow batches."""

    def pick(t: pa.Table) -> pa.Table:
        return pa.table({new: t.column(old) for new, old in cols.items()})

    return ds.map_batches(pick, batch_format="pyarrow")


def _where(ds, column: str, value: int):
    return ds.map_batches(lambda t: t.filter(pc.equal(t.column(column), value)), batch_format="pyarrow")


def _dedup(
    folder: Path,
    stored: dict[str, list[str]],
    cand_files: list[str],
    staging: Path,
    cfg: IngestConfig,
    parts: int,
    run: str,
) -> dict[str, list[str]]:
    """Judge every candidate against the store and the earlier candidates, as ``DedupState.judge`` does;
    writes the dropped ones as notes and the keys this run adds; returns the added key folders."""
    import ray

    cand = ray.data.read_parquet(cand_files).select_columns(["order", "id_hash", "text_hash", "bands"])
    added: dict[str, list[str]] = {k: [] for k in KINDS}
    notes = staging / "notes"

    def stage(live, kind: str, key: str, code: int, carry: list[str]):
        rows = _select(live, key=key, order="order", **{c: c for c in carry})
        pad = _keys(folder, stored[kind])
        if pad is not None:
            pad = pad.map_batches(lambda t, carry=tuple(carry): _pad_like(t, carry), batch_format="pyarrow")
        schema = pa.schema([("key", pa.uint64()), ("order", pa.int64())] + [(c, CARRIED[c]) for c in carry])
        judged = _by_key(
            [rows, pad], schema, parts, st.judge_partition, cand_files + _files(folder, stored[kind]), code=code
        ).materialize()
        _select(_where(judged, "verdict", code), order="order", verdict="verdict").map_batches(
            _note_drops, batch_format="pyarrow"
        ).write_parquet(str(notes / kind), partition_cols=["file"])
        survivors = _where(judged, "verdict", 0)
        _select(survivors, key="key").write_parquet(str(folder / f"dedup-{run}" / kind))
        added[kind].append(f"dedup-{run}/{kind}")
        return survivors

    live = stage(cand, "ids", "id_hash", DUP_ID, ["text_hash", "bands"])
    if cfg.dedup_exact:
        live = stage(live, "texts", "text_hash", DUP_TEXT, ["bands"])
    if cfg.dedup_near:
        pairs = live.map_batches(_explode_bands, batch_format="pyarrow")
        judged = _by_key(
            [pairs, _keys(folder, stored["bands"])],
            KEYS,
            parts,
            st.bands_partition,
            cand_files + _files(folder, stored["bands"]),
            per_row=hasher_bands(cfg),
        ).materialize()
        near = judged.map_batches(lambda t: t.filter(t.column("dominated")), batch_format="pyarrow")
        _select(near, order="order").map_batches(
            lambda t: _note_drops(t.append_column("verdict", pa.array([NEAR_DUP] * t.num_rows, pa.int8()))),
            batch_format="pyarrow",
        ).write_parquet(str(notes / "bands"), partition_cols=["file"])
        new_keys = judged.map_batches(lambda t: t.filter(t.column("new")).select(["key"]), batch_format="pyarrow")
        new_keys.write_parquet(str(folder / f"dedup-{run}" / "bands"))
        added["bands"].append(f"dedup-{run}/bands")
    return added


def _pad_like(t: pa.Table, carry: tuple[str, ...]) -> pa.Table:
    """Stored keys with the candidates' carried columns (zeros, empty lists), so the two can be unioned."""
    n = t.num_rows
    extra = {"text_hash": pa.array([0] * n, pa.uint64()), "bands": pa.array([[]] * n, pa.list_(pa.uint64()))}
    return pa.table({"key": t.column("key"), "order": t.column("order"), **{c: extra[c] for c in carry}})


def _explode_bands(t: pa.Table) -> pa.Table:
    bands = t.column("bands").combine_chunks()
    lengths = pc.list_value_length(bands).to_numpy(zero_copy_only=False)
    order = np.repeat(t.column("order").to_numpy(), lengths)
    return pa.table({"key": pc.list_flatten(bands), "order": pa.array(order)})


def _note_drops(t: pa.Table) -> pa.Table:
    return st.notes(t.column("order").to_numpy(), reason=t.column("verdict").to_numpy())


def _accounts_and_copies(folder: Path, cand_files: list[str], staging: Path, cfg: IngestConfig, parts: int):
    """Notes for the learned spam filter (copies by skeleton, each post's account); returns the new users."""
    import ray

    learned = cfg.drop_spam and cfg.spam_learned and bool(cand_files)
    files = [str(f) for f in table_files(folder, "users")]
    staged_files = sorted(str(f) for f in (staging / "users").glob("*.parquet"))
    inputs = [
        ray.data.read_parquet(files, schema=USERS).map_batches(_user_rows, batch_format="pyarrow") if files else None,
        ray.data.read_parquet(staged_files).map_batches(_user_rows, batch_format="pyarrow") if staged_files else None,
    ]
    if learned:
        cand = ray.data.read_parquet(cand_files).select_columns(["order", "author_id", "skeleton", "author_key"])
        inputs += [
            cand.map_batches(_post_rows, batch_format="pyarrow"),
            cand.map_batches(_skeleton_rows, batch_format="pyarrow"),
        ]
    if all(x is None for x in inputs):
        return None
    out = _by_key(inputs, PEOPLE, parts, st.people_partition, 2 * cand_files + files + staged_files).materialize()
    if learned:
        out.map_batches(
            lambda t: t.filter(pc.is_valid(t.column("order"))).select(st.NOTES.names), batch_format="pyarrow"
        ).write_parquet(str(staging / "notes" / "people"), partition_cols=["file"])
    return out.map_batches(
        lambda t: t.filter(pc.is_null(t.column("order"))).select(USERS.names).cast(USERS), batch_format="pyarrow"
    )


def _people(key: pa.Array, order: pa.Array, kind: int, cols: dict[str, pa.Array]) -> pa.Table:
    """Rows of the people shuffle (PEOPLE): the columns a kind has, nulls for the rest."""
    n = len(key)
    return pa.table(
        {
            "key": key,
            "order": order,
            "kind": pa.array(np.full(n, kind, np.int8)),
            **{f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in PEOPLE if f.name not in ("key", "order", "kind")},
        },
        schema=PEOPLE,
    )


def _user_rows(t: pa.Table) -> pa.Table:
    """Users: stored ones (no ``order`` column) at order -1, this run's staged ones at theirs."""
    order = t.column("order") if "order" in t.column_names else pa.array(np.full(t.num_rows, -1, np.int64))
    return _people(t.column("id"), order, st.USER, {c: t.column(c) for c in USERS.names})


def _post_rows(t: pa.Table) -> pa.Table:
    t = t.filter(pc.is_valid(t.column("author_id")))
    return _people(t.column("author_id"), t.column("order"), st.POST, {})


def _skeleton_rows(t: pa.Table) -> pa.Table:
    """Candidates with a skeleton key (0: too short to say), keyed NUL + the key."""
    t = t.filter(pc.not_equal(t.column("skeleton"), pa.scalar(0, pa.uint64())))
    key = pc.binary_join_element_wise("\x00", pc.cast(t.column("skeleton"), pa.string()), "")
    return _people(key, t.column("order"), st.SKELETON, {"author_key": t.column("author_key")})


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
