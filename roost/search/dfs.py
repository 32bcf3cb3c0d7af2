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
   length, then re-scores the candidates exactly: tantivy's ``explain`` gives
   each matched term's frequency and the document's (encoded) length, and
   :func:`bm25` applies tantivy's own formula with the global counts.

With one partition the sums are its own counts and the score is tantivy's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

K1, B = 1.2, 0.75  # tantivy's BM25 parameters
FIELDS = ("body", "expansion")
_TERM = re.compile(r'Term=Term\(field=(\d+), type=Str, "(.*)"\)$')
_RUST_ESCAPE = re.compile(r"\\u\{([0-9a-fA-F]+)\}|\\(.)")  # how Rust's Debug writes a str
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def _unescape(m: re.Match) -> str:
    if m.group(1):
        return chr(int(m.group(1), 16))
    return _SIMPLE.get(m.group(2), m.group(2))


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


@dataclass
class Matched:
    """One query term found in one field of a document, as tantivy's explanation reports it."""

    field_id: int
    term: str
    tf: float
    dl: float
    idf_n: float  # the documents holding the term, as the explaining index counts them
    docs: float  # N, as the explaining index counts it
    avgdl: float


def matched_terms(explanation_json: str) -> list[Matched]:
    """Every TermQuery node of a tantivy explanation (boosts and boolean sums around them are skipped)."""
    out: list[Matched] = []

    def walk(node: dict) -> None:
        if node.get("description", "").startswith("TermQuery"):
            m = _TERM.match((node.get("context") or [""])[0])
            if m:
                out.append(_matched(int(m.group(1)), m.group(2), node))
            return
        for child in node.get("details", []):
            walk(child)

    walk(json.loads(explanation_json))
    return out


def _matched(field_id: int, term: str, node: dict) -> Matched:
    values: dict[str, float] = {}

    def collect(n: dict) -> None:
        values[n.get("description", "").split(",")[0]] = n["value"]
        for child in n.get("details", []):
            collect(child)

    collect(node)
    return Matched(
        field_id=field_id,
        term=_RUST_ESCAPE.sub(_unescape, term),
        tf=values["freq"],
        dl=values["dl"],
        idf_n=values["n"],
        docs=values["N"],
        avgdl=values["avgdl"],
    )
