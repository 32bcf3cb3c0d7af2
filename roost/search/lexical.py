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

from roost.search.dfs import FIELDS, TermStats, index_sizes
from roost.search.docstore import Filters, Post
from roost.search.text import body_text, tokenize

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
        self._sizes: dict[str, tuple[int, float]] | None = None  # field -> (docs, tokens), per searcher

    @property
    def writer(self) -> tantivy.IndexWriter:
        if self._writer is None:  # taken lazily: tantivy allows one writer per index folder
            self._writer = self.index.writer(heap_size=self._heap, num_threads=self._threads)
        return self._writer

    def add(self, posts: list[Post], bodies: list[str] | None = None) -> None:
        """Stage posts (``bodies``: their :func:`body_text`, when already made); they become searchable at the
        next :meth:`commit`."""
        bodies = bodies if bodies is not None else [body_text(p.text) for p in posts]
        with self._lock:
            for p, body in zip(posts, bodies):
                doc = tantivy.Document()
                doc.add_unsigned("key", p.key)
                doc.add_text("body", body)
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
            self._sizes = None

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

    @staticmethod
    def query_terms(text: str) -> list[str]:
        return list(dict.fromkeys(tokenize(text)))[:MAX_QUERY_TERMS]

    def search(
        self,
        text: str,
        k: int,
        filters: Filters | None = None,
        expansion_weight: float = 0.0,
        stats: TermStats | None = None,
    ) -> list[tuple[int, float]]:
        """Top ``k`` (key, bm25) for the query's terms (any of them), restricted by ``filters``.

        With ``expansion_weight`` > 0 the terms also match the posts' expansion field (terms the
        model predicted for the post), their BM25 scaled by that weight. With ``stats`` (the sums of
        every partition's :meth:`term_stats`) tantivy ranks by the global rarity of each term and more
        than ``k`` come back, for :func:`roost.search.dfs.rescore` (:mod:`roost.search.dfs`)."""
        terms = self.query_terms(text)
        if not terms:
            return []
        weights = {"body": 1.0, "expansion": expansion_weight}
        boost = self._global_boosts(terms, stats) if stats is not None else {}
        should = []
        for f in FIELDS:
            if weights[f] > 0:
                for t in terms:
                    q = tantivy.Query.term_query(self.schema, f, t)
                    b = weights[f] * boost.get((f, t), 1.0)
                    should.append(q if b == 1.0 else tantivy.Query.boost_query(q, b))
        body = tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in should])
        must = self._filter_query(filters) if filters else []
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in [body, *must]]) if must else body
        searcher = self._searcher
        # with global statistics the caller re-scores (dfs.rescore), so fetch beyond k: a post whose rank moves
        # with the average length (the one count the boosts leave local) is still among them
        hits = searcher.search(query, k if stats is None else k + k // 2 + 10, count=False).hits
        keys = searcher.fast_field_values("key", [addr for _, addr in hits])
        return [(int(key), float(score)) for (score, _), key in zip(hits, keys)]

    def _global_boosts(self, terms: list[str], stats: TermStats) -> dict[tuple[str, str], float]:
        """Per (field, term): global idf / local idf, so tantivy ranks candidates by the global rarity."""
        local = self.term_stats(terms)
        return {(f, t): stats.idf(f, t) / local.idf(f, t) for f in FIELDS for t in terms if local.df.get(f, {}).get(t)}

    def term_stats(self, terms: list[str]) -> TermStats:
        """This index's counts for BM25 of ``terms``, to be summed over partitions (:func:`dfs.merge`)."""
        searcher = self._searcher
        return self._with_sizes({f: {t: searcher.doc_freq(f, t) for t in terms} for f in FIELDS})

    def vocabulary(self, limit: int) -> tuple[TermStats, bool]:
        """The counts of this index's ``limit`` most frequent terms per field (tantivy lists a field's
        dictionary by document frequency), and True when that is every term it holds."""
        searcher = self._searcher
        df = {f: dict(searcher.terms_with_prefix(f, "", limit=limit)) for f in FIELDS}
        return self._with_sizes(df), all(len(terms) < limit for terms in df.values())

    def _with_sizes(self, df: dict[str, dict[str, int]]) -> TermStats:
        sizes = self._field_sizes()
        docs = max((n for n, _ in sizes.values()), default=0)
        return TermStats(docs=docs, tokens={f: tokens for f, (_, tokens) in sizes.items()}, df=df)

    def _field_sizes(self) -> dict[str, tuple[int, float]]:
        """Per field: the documents and tokens tantivy's BM25 counts (deleted documents too, until merged).

        tantivy does not expose them directly; its explanation of any match reports N and the
        average length, so one match per field is explained (cached until the next commit)."""
        if self._sizes is not None:
            return self._sizes
        searcher, sizes = self._searcher, {}
        for f in FIELDS:
            top = searcher.terms_with_prefix(f, "", limit=1)
            if not top:
                continue
            q = tantivy.Query.term_query(self.schema, f, top[0][0])
            hits = searcher.search(q, 1, count=False).hits
            if hits:
                docs, avgdl = index_sizes(q.explain(searcher, hits[0][1]).to_json())
                sizes[f] = (int(docs), docs * avgdl)
        self._sizes = sizes
        return sizes
