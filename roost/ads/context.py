"""Who is asking: each user's recent posts, activity and language, read once from the corpus.

Serving an ad to a user with no query matches creatives against what the user
posted lately. Only the last few posts per user are kept, so memory grows with
the number of users, not the number of posts.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm


@dataclass
class UserHistory:
    recent: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # user -> [(post id, text)], newest first
    activity: dict[str, int] = field(default_factory=dict)  # user -> number of posts
    langs: dict[str, str] = field(default_factory=dict)  # user -> most used language
    posts: dict[str, str] = field(default_factory=dict)  # post id -> text, for kept posts
    corpus_dir: Path | None = None  # where to look up other posts

    @classmethod
    def from_corpus(cls, corpus_dir: str | Path, keep: int = 5) -> UserHistory:
        from roost.corpus.schema import iter_batches

        heaps: dict[str, list] = defaultdict(list)
        counts: Counter = Counter()
        langs: dict[str, Counter] = defaultdict(Counter)
        columns = ["id", "text", "author_id", "created_at", "lang"]
        for batch in tqdm(iter_batches(corpus_dir, "posts", columns=columns), desc="reading user posts", unit="batch"):
            cols = batch.to_pydict()
            for pid, text, author, created, lang in zip(*(cols[c] for c in columns)):
                if author is None:
                    continue
                counts[author] += 1
                langs[author][lang] += 1
                item = (created.timestamp() if created else 0.0, pid, text)
                if len(heaps[author]) < keep:
                    heapq.heappush(heaps[author], item)
                else:
                    heapq.heappushpop(heaps[author], item)
        recent = {u: [(pid, text) for _, pid, text in sorted(h, reverse=True)] for u, h in heaps.items()}
        return cls(
            recent=recent,
            activity=dict(counts),
            langs={u: c.most_common(1)[0][0] for u, c in langs.items()},
            posts={pid: text for items in recent.values() for pid, text in items},
            corpus_dir=Path(corpus_dir),
        )

    def post_texts(self, post_ids: list[str]) -> list[str]:
        """Texts of the given posts, from memory or else the corpus; unknown ids are skipped."""
        found = {p: self.posts[p] for p in post_ids if p in self.posts}
        missing = [p for p in post_ids if p not in found]
        if missing and self.corpus_dir is not None:
            import pyarrow.dataset as ds

            from roost.corpus.schema import dataset

            table = dataset(self.corpus_dir, "posts").to_table(
                columns=["id", "text"], filter=ds.field("id").isin(missing)
            )
            found.update(zip(table.column("id").to_pylist(), table.column("text").to_pylist()))
        return [found[p] for p in post_ids if p in found]
