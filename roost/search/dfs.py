"""BM25 with corpus-wide term statistics, for an index split into partitions.

BM25 weighs a term by how rare it is (``idf``, from the number of documents and
how many contain the term) and a document by its length against the average.
A partition that scores with its own counts ranks its posts differently from one
index over all posts. Elasticsearch's answer is DFS query-then-fetch: first ask
every shard for its counts of the query's terms, add them up, then let each
shard score with the sums. roost does the same:

1. :meth:`LexicalIndex.term_stats` gives a partition's :class:`TermStats`
   (documents, tokens per field, and the document frequency of each query term,
   counted as tantivy counts them: deleted documents stay in until merged away).
2. The front adds them up (:func:`merge`) and sends the sum with the query.
3. Each partition asks tantivy for candidates with each term boosted from its
   local to the global ``idf``, so the only difference left is the average
   length, fetches a margin beyond what it returns, and re-scores them exactly
   (:func:`rescore`): the post's tokens as they were indexed (kept in the doc
   store), its length as
   tantivy stores it (:func:`fieldnorm`), and tantivy's BM25 with the global
   counts.

With one partition the sums are its own counts and the score is tantivy's.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field

K1, B = 1.2, 0.75  # tantivy's BM25 parameters
FIELDS = ("body", "expansion")


@dataclass
class TermStats:
    """One index's (or the sum of several indexes') counts for scoring a query's terms."""

    docs: int = 0
    tokens: dict[str, float] = field(default_factory=dict)  # field -> total tokens
    df: dict[str, dict[str, int]] = field(default_factory=dict)  # field -> term -> documents holding it

    def idf(self, fieldname: str, term: str) -> float:
        n = self.df.get(fieldname, {}).get(term, 0)
        return math.log(1.0 + (self.docs - n + 0.5) / (n + 0.5))

    def avgdl(self, fieldname: str) -> float:
        return self.tokens.get(fieldname, 0.0) / self.docs if self.docs else 0.0

    def to_dict(self) -> dict:
        return {"docs": self.docs, "tokens": self.tokens, "df": self.df}

    @classmethod
    def from_dict(cls, d: dict) -> TermStats:
        return cls(
            docs=int(d["docs"]),
            tokens={f: float(v) for f, v in d["tokens"].items()},
            df={f: {t: int(n) for t, n in terms.items()} for f, terms in d["df"].items()},
        )


def merge(parts: list[TermStats]) -> TermStats:
    """The statistics of the union of disjoint indexes."""
    total = TermStats()
    for p in parts:
        total.docs += p.docs
        for f, n in p.tokens.items():
            total.tokens[f] = total.tokens.get(f, 0.0) + n
        for f, terms in p.df.items():
            into = total.df.setdefault(f, {})
            for t, n in terms.items():
                into[t] = into.get(t, 0) + n
    return total


def bm25(tf: float, dl: float, idf: float, avgdl: float) -> float:
    """tantivy's BM25 of one term in one document."""
    if avgdl <= 0:
        return 0.0
    return idf * (K1 + 1) * tf / (tf + K1 * (1 - B + B * dl / avgdl))


def _fieldnorms() -> list[int]:
    """The document lengths tantivy can store (one byte per document and field, as Lucene does): exact up to
    40 tokens, then buckets of eight whose width doubles every eight."""
    table, length, step = list(range(41)), 40, 2
    while len(table) < 256:
        for _ in range(8):
            length += step
            table.append(length)
        step *= 2
    return table[:256]


FIELDNORMS = _fieldnorms()


def fieldnorm(length: int) -> int:
    """A document length as tantivy stores it, and so scores it."""
    return FIELDNORMS[bisect.bisect_right(FIELDNORMS, length) - 1]


def rescore(
    ranked: list[tuple[int, float]],
    fields: dict[int, dict[str, list[str]]],
    terms: list[str],
    weights: dict[str, float],
    stats: TermStats,
) -> list[tuple[int, float]]:
    """Candidates (key, local score) re-scored with the global ``stats`` from their indexed ``fields``, best
    first (ties by key): the BM25 one index over every partition gives them."""
    # per field: its weight, average length and each term's idf, computed once for all candidates
    scoring = [
        (f, w, stats.avgdl(f), [(t, stats.idf(f, t)) for t in terms])
        for f, w in weights.items()
        if w > 0 and f in FIELDS
    ]
    scored = []
    for k, _ in ranked:
        post = fields.get(k)
        if post is None:
            continue
        total = 0.0
        for f, w, avgdl, idfs in scoring:
            tokens = post.get(f)
            if not tokens:
                continue
            dl = fieldnorm(len(tokens))
            for t, idf in idfs:
                tf = tokens.count(t)
                if tf:
                    total += w * bm25(tf, dl, idf, avgdl)
        scored.append((k, total))
    scored.sort(key=lambda ks: (-ks[1], ks[0]))
    return scored


def index_sizes(explanation_json: str) -> tuple[float, float]:
    """(N, average length) from a tantivy explanation of one term's match: the counts its BM25 used."""
    values: dict[str, float] = {}

    def collect(n: dict) -> None:
        values[n.get("description", "").split(",")[0]] = n["value"]
        for child in n.get("details", []):
            collect(child)

    collect(json.loads(explanation_json))
    return values["N"], values["avgdl"]
