"""``roost corpus stats``: a person's sanity look at the corpus, streamed batch by batch.

Authors are shown by @handle (from the users table) so a person can tell who they are. A hashtag is
"spam-like" when it is a known spam tag (#followback, #giveaway, ...) or when the posts ingest dropped as
spam (``spam.jsonl``) use it at least as often as all the kept posts do (a topic tag that spam also hijacks,
such as #climate, stays clean); when such tags are half or more of the top hashtags, spam is likely getting
through and the report says so.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from roost.corpus.normalize import HASHTAG_RE
from roost.corpus.schema import iter_batches, read_table
from roost.workspace import Workspace

KNOWN_SPAM_TAGS = frozenset(
    "followback follow4follow f4f followforfollow teamfollowback giveaway giveaways free freebie win winner promo "
    "airdrop getrich makemoneyonline sale deal deals".split()
)
MIN_SPAM_USES = 5


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
    handles: dict = field(default_factory=dict)  # author id -> username, for the top authors
    spam_hashtags: Counter = field(default_factory=Counter)  # hashtags of the posts dropped as spam

    def spam_like(self, tag: str) -> bool:
        """A known spam tag, or one the dropped spam used at least as often as the kept posts use it."""
        uses = self.spam_hashtags[tag]
        return tag in KNOWN_SPAM_TAGS or (uses >= MIN_SPAM_USES and uses >= self.hashtags[tag])


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
    top = {a for a, _ in s.authors.most_common(100) if a is not None}
    users = read_table(ws.corpus, "users", ["id", "username"]).to_pydict()
    s.handles = {i: u for i, u in zip(users["id"], users["username"]) if i in top and u}
    log = ws.corpus / "spam.jsonl"
    if log.exists():
        with open(log, encoding="utf-8") as f:
            for line in f:
                s.spam_hashtags.update({h.lower() for h in HASHTAG_RE.findall(json.loads(line).get("text") or "")})
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
    days = [
        ("no date" if d is None else str(d), n)
        for d, n in sorted(s.by_day.items(), key=lambda kv: (kv[0] is None, str(kv[0])))
    ]
    if len(days) > 2 * top:
        middle = days[top:-top]
        days = days[:top] + [(f"... {len(middle)} more days", sum(n for _, n in middle))] + days[-top:]
    lines += _table("by day:", days) + [""]
    tags = s.hashtags.most_common(top)
    spammy = [k for k, _ in tags if s.spam_like(k)]
    lines += _table("top hashtags:", [(f"#{k}" + ("  (spam-like)" if k in spammy else ""), v) for k, v in tags])
    if tags and len(spammy) * 2 >= len(tags):
        lines.append(
            f"  WARNING: spam-like tags are {len(spammy)} of the top {len(tags)} hashtags "
            f"({', '.join('#' + k for k in spammy)}): spam is likely getting through ingest's filters; "
            "see corpus/spam.jsonl for what was dropped and the spam_* settings of the ingest config"
        )
    lines.append("")
    lines += _table("top authors:", [(_author(k, s.handles), v) for k, v in s.authors.most_common(top)]) + [""]
    lines += _table("thread depths (posts at each depth):", sorted(s.thread_depths.items())) + [""]
    read, kept = c.get("read", 0), c.get("kept", 0)
    dropped, malformed = c.get("dropped", {}), c.get("malformed", {})
    lines.append(
        f"accounting: read {read:,} = kept {kept:,} + dropped {sum(dropped.values()):,} "
        f"+ malformed {sum(malformed.values()):,}"
        + ("" if read == kept + sum(dropped.values()) + sum(malformed.values()) else "   (DOES NOT ADD UP)")
    )
    lines += _table("dropped:", sorted(dropped.items(), key=lambda kv: -kv[1]), read)
    lines += _table("malformed:", sorted(malformed.items(), key=lambda kv: -kv[1]), read)
    return "\n".join(lines)


def _author(author_id: str | None, handles: dict[str, str]) -> str:
    if author_id is None:
        return "(unknown)"
    return f"@{handles[author_id]} ({author_id})" if author_id in handles else author_id
