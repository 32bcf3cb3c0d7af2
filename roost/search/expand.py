"""Document expansion: the retriever predicts hashtags for each post, and their words are indexed with it.

A post rarely says the words people search for it by; the hashtags its author
could have added often do. The retriever was trained to bring a hashtag's words
close to its posts, so the tags nearest a post's vector (among the tags of the
training corpus) are the ones it predicts. Their words go into the lexical
index's ``expansion`` field, which BM25 searches with its own, tuned weight
(``RankingConfig.w_expansion``): the keyword engine finds posts by words they
never contained.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from roost.search.engine import EmbedFn
from roost.search.text import hashtag_words, tokenize


@dataclass
class ExpansionConfig:
    min_posts: int = 3  # a tag on at least this many training posts can be predicted
    max_tags: int = 20_000
    top: int = 3  # tags predicted per post, at most
    min_similarity: float = 0.5  # ... each at least this close to the post (measured: 0.5-0.6 alike, BENCHMARKS.md)


def tag_vocabulary(hashtags: list[list[str]], counts: Counter, cfg: ExpansionConfig) -> tuple[list[str], list[str]]:
    """(tags, their words) of the corpus: tags on at least ``min_posts`` posts, the most used first; ``counts``
    (the corpus's word counts) split run-together tags into words."""
    df = Counter(t.lower() for tags in hashtags for t in set(tags or []))
    tags = [t for t, c in df.most_common(cfg.max_tags) if c >= cfg.min_posts and not t.isdigit()]
    return tags, [" ".join(hashtag_words(t, counts)) for t in tags]


class TagExpander:
    """Post vectors -> the index terms of the tags nearest each (an :data:`~roost.search.engine.ExpandFn`)."""

    def __init__(self, tags: list[str], words: list[str], vectors: np.ndarray, cfg: ExpansionConfig):
        if len(tags) != len(words) or len(tags) != len(vectors):
            raise ValueError(f"{len(tags)} tags, {len(words)} word lists and {len(vectors)} vectors must agree")
        self.tags, self.words, self.cfg = tags, words, cfg
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.terms = [list(dict.fromkeys([f"#{t}", t, *tokenize(w)])) for t, w in zip(tags, words)]

    @classmethod
    def build(cls, tags: list[str], words: list[str], embed_queries: EmbedFn, cfg: ExpansionConfig) -> TagExpander:
        """Tag vectors from the query encoder: a tag's words are what a searcher would type."""
        return cls(tags, words, embed_queries(words) if tags else np.zeros((0, 1), np.float32), cfg)

    def __call__(self, post_vecs: np.ndarray) -> list[list[str]]:
        if not self.tags:
            return [[] for _ in range(len(post_vecs))]
        sims = post_vecs @ self.vectors.T
        top = min(self.cfg.top, sims.shape[1])
        best = np.argpartition(-sims, top - 1, axis=1)[:, :top]
        out = []
        for row, cols in zip(sims, best):
            cols = sorted(cols, key=lambda c: -row[c])
            out.append([term for c in cols if row[c] >= self.cfg.min_similarity for term in self.terms[c]])
        return out
