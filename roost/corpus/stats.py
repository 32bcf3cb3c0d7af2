"""``roost corpus stats``: a person's sanity look at the corpus, streamed batch by batch."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from roost.corpus.schema import iter_batches
from roost.workspace import Workspace


@dataclass
class CorpusStats:
    posts: int = 0
    by_lang: Counter = field(default_factory=Counter)
    by_day: Counter = field(default_factory=Counter)
    hashtags: Counter = field(default_factory=Counter)
    authors: Counter = field(default_factory=Counter)
    thread_depths: Counter = field(default_factory=Counter)
    threads: int = 0
    counts: dict = field(default_factory=dict)


def _tally(counter: Counter, arr: pa.Array) -> None:
    for row in pc.value_counts(arr).to_pylist():
        counter[row["values"]] += row["counts"]


def corpus_stats(ws: Workspace) -> CorpusStats:
    manifest = ws.require("corpus")
    s = CorpusStats(counts=manifest.get("counts", {}))
    for b in iter_batches(ws.corpus, "posts", ["lang", "created_at", "hashtags", "author_id"]):
        s.posts += b.num_rows
        _tally(s.by_lang, b.column("lang"))
        _tally(s.by_day, pc.cast(b.column("created_at"), pa.date32()))
        _tally(s.hashtags, pc.list_flatten(b.column("hashtags")))
        _tally(s.authors, b.column("author_id"))
    roots = set()
    for b in iter_batches(ws.corpus, "threads", ["thread_id", "depth"]):
        _tally(s.thread_depths, b.column("depth"))
        roots.update(b.column("thread_id").to_pylist())
    s.threads = len(roots)
    return s


def _table(title: str, rows: list[tuple], total: int | None = None) -> list[str]:
    out = [title]
    if not rows:
        return out + ["  (none)"]
    width = max(len(str(k)) for k, _ in rows)
    for k, v in rows:
        pct = f"  {100 * v / total:5.1f}%" if total else ""
        out.append(f"  {k!s:<{width}}  {v:>10,}{pct}")
    return out


def format_stats(s: CorpusStats, top: int = 10) -> str:
    c = s.counts
    lines = [f"posts: {s.posts:,}   threads: {s.threads:,}   users: {c.get('users', 0):,}", ""]
    lines += _table("by language:", s.by_lang.most_common(top), s.posts) + [""]
    days = [("no date" if d is None else str(d), n)
            for d, n in sorted(s.by_day.items(), key=lambda kv: (kv[0] is None, str(kv[0])))]
    if len(days) > 2 * top:
        middle = days[top:-top]
        days = days[:top] + [(f"... {len(middle)} more days", sum(n for _, n in middle))] + days[-top:]
    lines += _table("by day:", days) + [""]
    lines += _table("top hashtags:", [(f"#{k}", v) for k, v in s.hashtags.most_common(top)]) + [""]
    lines += _table("top authors:", [(k or "(unknown)", v) for k, v in s.authors.most_common(top)]) + [""]
    lines += _table("thread depths (posts at each depth):", sorted(s.thread_depths.items())) + [""]
    read, kept = c.get("read", 0), c.get("kept", 0)
    dropped, malformed = c.get("dropped", {}), c.get("malformed", {})
    lines.append(f"accounting: read {read:,} = kept {kept:,} + dropped {sum(dropped.values()):,} "
                 f"+ malformed {sum(malformed.values()):,}"
                 + ("" if read == kept + sum(dropped.values()) + sum(malformed.values()) else "   (DOES NOT ADD UP)"))
    lines += _table("dropped:", sorted(dropped.items(), key=lambda kv: -kv[1]), read)
    lines += _table("malformed:", sorted(malformed.items(), key=lambda kv: -kv[1]), read)
    return "\n".join(lines)
