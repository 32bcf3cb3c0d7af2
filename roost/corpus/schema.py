"""The corpus artifact's tables: the contract every later stage reads.

``workspace/corpus/`` holds Parquet shards ``posts-*.parquet``, ``threads-*.parquet``
and ``users-*.parquet``, plus ``rejects.jsonl`` and ``manifest.json``. Later
stages read them with :func:`read_table` and never import ingest code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

TS = pa.timestamp("us", tz="UTC")

POSTS = pa.schema(
    [
        ("id", pa.string()),  # platform post id, unique in the corpus
        ("text", pa.string()),  # normalized, PII scrubbed
        ("author_id", pa.string()),
        ("created_at", TS),
        ("lang", pa.string()),  # ISO 639-1, "und" when unknown
        ("reply_to", pa.string()),  # id of the post this replies to, or null
        ("conversation_id", pa.string()),  # id of the thread's root post, or null
        ("hashtags", pa.list_(pa.string())),  # lower-cased, without '#'
        ("mentions", pa.list_(pa.string())),  # lower-cased, without '@'
        ("urls", pa.list_(pa.string())),
        ("like_count", pa.int64()),
        ("retweet_count", pa.int64()),
        ("reply_count", pa.int64()),
        ("source", pa.string()),  # the file it was read from
    ]
)

# One row per post that belongs to a reply thread (a root with at least one reply).
THREADS = pa.schema(
    [
        ("thread_id", pa.string()),  # the root post's id
        ("post_id", pa.string()),
        ("parent_id", pa.string()),  # null for the root
        ("depth", pa.int32()),  # 0 for the root
    ]
)

USERS = pa.schema(
    [
        ("id", pa.string()),
        ("username", pa.string()),
        ("name", pa.string()),
        ("created_at", TS),
        ("followers_count", pa.int64()),
    ]
)

TABLES = {"posts": POSTS, "threads": THREADS, "users": USERS}

# What the platform did to posts (API v2 ``withheld``/``possibly_sensitive``, a CSV/Parquet ``moderation``
# column, the network's own ``moderation`` field): one ``{"run", "id", "label"}`` a line, appended by each
# ingest run. Brand safety learns from it (``roost ads train-safety``); a label whose post is not in the
# posts table (a duplicate dropped later) has no text and is skipped.
MODERATION_LOG = "moderation.jsonl"


def table_files(corpus_dir: str | Path, table: str) -> list[Path]:
    return sorted(Path(corpus_dir).glob(f"{table}-*.parquet"))


def dataset(corpus_dir: str | Path, table: str) -> ds.Dataset:
    """A pyarrow dataset over one table's shards (empty when there are none)."""
    files = table_files(corpus_dir, table)
    if not files:
        return ds.dataset(pa.table({n: pa.array([], t) for n, t in zip(TABLES[table].names, TABLES[table].types)}))
    return ds.dataset([str(f) for f in files], format="parquet", schema=TABLES[table])


def read_table(corpus_dir: str | Path, table: str, columns: list[str] | None = None) -> pa.Table:
    return dataset(corpus_dir, table).to_table(columns=columns)


def iter_batches(
    corpus_dir: str | Path, table: str, columns: list[str] | None = None, batch_size: int = 8192
) -> Iterator[pa.RecordBatch]:
    """Stream a table in record batches: memory stays bounded whatever the corpus size."""
    yield from dataset(corpus_dir, table).to_batches(columns=columns, batch_size=batch_size)


# Placeholders ingest writes in place of scrubbed or replaced spans; the tokenizer
# makes each a single special token.
PLACEHOLDERS = {
    "url": "<|url|>",
    "mention": "<|mention|>",
    "email": "<|email|>",
    "phone": "<|phone|>",
}
