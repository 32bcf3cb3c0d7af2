"""BM25 over posts with tantivy: persistent, incremental, with filter fields.

The ``body`` field holds our own tokens (see :mod:`roost.search.text`) joined by
spaces and indexed with tantivy's whitespace tokenizer, so ``#tags``,
``@mentions`` and emoji are terms like any word. Queries are built as term
queries (never through tantivy's query parser, which would choke on ``#``).
"""

from __future__ import annotations

import threading
from pathlib import Path

import tantivy

from roost.search.docstore import Filters, Post
from roost.search.text import tokenize

MAX_QUERY_TERMS = 64


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_unsigned_field("key", stored=True, indexed=True, fast=True)
    sb.add_text_field("body", tokenizer_name="whitespace", index_option="freq")
    sb.add_text_field("expansion", tokenizer_name="whitespace", index_option="freq")
    sb.add_text_field("author", tokenizer_name="raw", index_option="basic")
    sb.add_text_field("lang", tokenizer_name="raw", index_option="basic")
    sb.add_text_field("tag", tokenizer_name="raw", index_option="basic")
    sb.add_float_field("ts", indexed=True, fast=True)
    return sb.build()


class LexicalIndex:
    """A tantivy index in ``path``; one writer for the life of the object, searchers reloaded on commit."""

    def __init__(self, path: str | Path, *, heap_bytes: int = 128_000_000, threads: int = 1):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.schema = _schema()
        exists = tantivy.Index.exists(str(self.path))
        self.index = tantivy.Index.open(str(self.path)) if exists else tantivy.Index(self.schema, path=str(self.path))
        self._heap, self._threads = heap_bytes, threads
        self._writer: tantivy.IndexWriter | None = None
        self._lock = threading.Lock()
        self.index.reload()
        self._searcher = self.index.searcher()

    @property
    def writer(self) -> tantivy.IndexWriter:
        if self._writer is None:  # taken lazily: tantivy allows one writer per index folder
            self._writer = self.index.writer(heap_size=self._heap, num_threads=self._threads)
        return self._writer

    def add(self, posts: list[Post]) -> None:
        """Stage posts; they become searchable at the next :meth:`commit`."""
        with self._lock:
            for p in posts:
                doc = tantivy.Document()
                doc.add_unsigned("key", p.key)
                doc.add_text("body", " ".join(tokenize(p.text)))
                if p.expansion:
                    doc.add_text("expansion", " ".join(p.expansion))
                if p.author_id is not None:
                    doc.add_text("author", p.author_id)
                if p.lang is not None:
                    doc.add_text("lang", p.lang)
                for t in set(p.hashtags):
                    doc.add_text("tag", t)
                doc.add_float("ts", float(p.created_at))
                self.writer.add_document(doc)

    def delete(self, key: int) -> None:
        with self._lock:
            self.writer.delete_documents_by_query(tantivy.Query.term_query(self.schema, "key", key))

    def commit(self) -> None:
        """Make staged adds and deletes durable and visible to new searches."""
        with self._lock:
            if self._writer is not None:
                self._writer.commit()
            self.index.reload()
            self._searcher = self.index.searcher()

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.wait_merging_threads()  # also releases the folder's writer lock
                self._writer = None

    def num_docs(self) -> int:
        return self._searcher.num_docs

    def max_key(self) -> int:
        """The highest post key indexed (-1 when none): what the doc store holds above it was never committed."""
        hits = self._searcher.search(tantivy.Query.all_query(), 1, count=False, order_by_field="key").hits
        return int(hits[0][0]) if hits else -1

    def _filter_query(self, f: Filters) -> list[tantivy.Query]:
        qs = []
        for field, value in (("author", f.author), ("lang", f.lang), ("tag", f.hashtag)):
            if value is not None:
                qs.append(tantivy.Query.term_query(self.schema, field, value))
        if f.since is not None or f.until is not None:
            lo = f.since if f.since is not None else -1e18
            hi = f.until if f.until is not None else 1e18
            qs.append(
                tantivy.Query.range_query(
                    self.schema, "ts", tantivy.FieldType.Float, lo, hi, include_lower=True, include_upper=False
                )
            )
        return [tantivy.Query.const_score_query(q, 0.0) for q in qs]

    def search(
        self, text: str, k: int, filters: Filters | None = None, expansion_weight: float = 0.0
    ) -> list[tuple[int, float]]:
        """Top ``k`` (key, bm25) for the query's terms (any of them), restricted by ``filters``.

        With ``expansion_weight`` > 0 the terms also match the posts' expansion field (terms the
        model predicted for the post), their BM25 scaled by that weight."""
        terms = list(dict.fromkeys(tokenize(text)))[:MAX_QUERY_TERMS]
        if not terms:
            return []
        should = [tantivy.Query.term_query(self.schema, "body", t) for t in terms]
        if expansion_weight > 0:
            should += [
                tantivy.Query.boost_query(tantivy.Query.term_query(self.schema, "expansion", t), expansion_weight)
                for t in terms
            ]
        body = tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in should])
        must = self._filter_query(filters) if filters else []
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in [body, *must]]) if must else body
        searcher = self._searcher
        hits = searcher.search(query, k, count=False).hits
        keys = searcher.fast_field_values("key", [addr for _, addr in hits])
        return [(int(key), float(score)) for (score, _), key in zip(hits, keys)]
