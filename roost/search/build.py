"""Build ``workspace/index/`` from the corpus (and the served model, for vectors)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from roost.corpus import schema
from roost.search.docstore import DocStore, Post, saturate
from roost.search.engine import DOCS, LEXICAL, VECTORS, EmbedFn, SearchModel
from roost.search.lexical import LexicalIndex
from roost.search.text import body_text
from roost.search.vector import VectorConfig, VectorIndex
from roost.workspace import Workspace, atomic_dir

POST_COLUMNS = [
    "id",
    "text",
    "author_id",
    "created_at",
    "lang",
    "hashtags",
    "like_count",
    "retweet_count",
    "reply_count",
]


@dataclass
class BuildConfig:
    batch_size: int = 2048
    followers_half: float = 1000.0  # an author with this many followers has quality 0.5
    writer_heap_bytes: int = 256_000_000
    threads: int = 1


def engagement(likes, retweets, replies) -> float:
    return float((likes or 0) + 2 * (retweets or 0) + (replies or 0))


def batch_posts(batch: pa.RecordBatch) -> list[Post]:
    """Posts of one corpus record batch (columns as in :data:`POST_COLUMNS`)."""
    d = batch.to_pydict()
    secs = pc.divide(pc.cast(batch.column("created_at"), pa.int64()), 1_000_000).to_pylist()
    return [
        Post(
            id=d["id"][i],
            text=d["text"][i] or "",
            author_id=d["author_id"][i],
            created_at=float(secs[i] or 0),
            lang=d["lang"][i],
            hashtags=list(d["hashtags"][i] or []),
            engagement=engagement(d["like_count"][i], d["retweet_count"][i], d["reply_count"][i]),
        )
        for i in range(batch.num_rows)
    ]


def build_index(
    posts: Iterable[list[Post]],
    out: str | Path,
    embed: SearchModel | EmbedFn | None,
    *,
    total: int | None = None,
    author_quality: dict[str, float] | None = None,
    config: BuildConfig | None = None,
    vector_config: VectorConfig | None = None,
) -> dict:
    """Write a complete index folder at ``out`` from batches of posts; returns counts."""
    cfg = config or BuildConfig()
    model = SearchModel.of(embed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    docs = DocStore(out / DOCS)
    lexical = LexicalIndex(out / LEXICAL, heap_bytes=cfg.writer_heap_bytes, threads=cfg.threads)
    vectors: VectorIndex | None = None
    seen: set[str] = set()
    n = dupes = 0
    with tqdm(total=total, unit="post", desc="index") as bar:
        for batch in posts:
            fresh = []
            for p in batch:
                if p.id in seen:  # the corpus promises unique ids; an index must not break if it lies
                    dupes += 1
                    continue
                seen.add(p.id)
                if p.key < 0:  # a partition's posts come keyed by their place in the whole corpus
                    p.key = n + len(fresh)
                fresh.append(p)
            if fresh:
                vecs = model.embed([p.text for p in fresh]) if model is not None else None
                if model is not None:
                    for p, terms in zip(fresh, model.expansions(vecs, len(fresh))):
                        p.expansion = terms
                bodies = [body_text(p.text) for p in fresh]  # tokenized once for both
                docs.add(fresh, bodies=bodies)
                lexical.add(fresh, bodies)
                if vecs is not None:
                    if vectors is None:
                        vectors = VectorIndex(vecs.shape[1], vector_config)
                    vectors.add([p.key for p in fresh], vecs, threads=cfg.threads)
            n += len(fresh)
            bar.update(len(batch))
    docs.set_author_quality(author_quality or {})
    lexical.commit()
    lexical.close()
    if vectors is not None:
        vectors.save(out / VECTORS)
    docs.close()
    return {
        "posts": n,
        "duplicate_ids_skipped": dupes,
        "vectors": len(vectors) if vectors else 0,
        "dim": vectors.ndim if vectors else 0,
    }


def _corpus_posts(corpus: Path, batch_size: int) -> Iterator[list[Post]]:
    for batch in schema.iter_batches(corpus, "posts", columns=POST_COLUMNS, batch_size=batch_size):
        yield batch_posts(batch)


def author_quality_from_users(corpus: Path, half: float) -> dict[str, float]:
    users = schema.read_table(corpus, "users", columns=["id", "followers_count"]).to_pydict()
    return {u: saturate(f or 0, half) for u, f in zip(users["id"], users["followers_count"])}


def index_inputs(ws: Workspace, model_hash: str | None) -> dict[str, str]:
    """What an index is made from (manifest inputs): the corpus, and the model when it has vectors."""
    ws.require("corpus")
    inputs = {"corpus": ws.stage_hash("corpus")}
    if model_hash is not None:
        inputs["model"] = model_hash
    return inputs


def build_workspace_index(
    ws: Workspace,
    embed: SearchModel | EmbedFn | None,
    *,
    model_hash: str | None = None,
    config: BuildConfig | None = None,
    vector_config: VectorConfig | None = None,
) -> dict:
    """Build ``ws.index`` atomically from ``ws.corpus``; writes and returns its manifest."""
    cfg = config or BuildConfig()
    inputs = index_inputs(ws, model_hash)
    total = schema.dataset(ws.corpus, "posts").count_rows()
    quality = author_quality_from_users(ws.corpus, cfg.followers_half)
    with atomic_dir(ws.index) as tmp:
        counts = build_index(
            _corpus_posts(ws.corpus, cfg.batch_size),
            tmp,
            embed,
            total=total,
            author_quality=quality,
            config=cfg,
            vector_config=vector_config,
        )
        manifest = ws.write_manifest(
            "index", inputs, counts, folder=tmp, semantic=embed is not None, files=[DOCS, LEXICAL, VECTORS]
        )
    return manifest
