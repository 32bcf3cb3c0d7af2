"""Which topics a text is about, learned from the users' posts with the campaigns' targeting as seeds.

Users post mostly about what they care about, and they click ads on those
topics. But a post seldom names a campaign's keywords ("this novel deserves
more readers" names no books campaign's term), and an embedding from a small
model does not separate topics well. So the topic of a post is learned:

1. seed: a post that names a term of a topic's pooled vocabulary (:meth:`Catalog.match_topics`);
2. a user's seeded posts give the user's topic mix, which labels all of that user's posts
   (people stay on their topics, so their unseeded posts are evidence too);
3. multinomial naive Bayes over those soft labels gives every word its topic weights.

A text's topic mix is then the naive-Bayes posterior; a user's is the mean over
their recent posts, which estimates how much the user cares about each topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from roost.ads.catalog import Catalog, words
from roost.ads.embedder import STOPWORDS


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS and len(w) > 1]


@dataclass
class TopicModel:
    topics: list[str] = field(default_factory=list)
    vocab: dict[str, int] = field(default_factory=dict)
    log_prob: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (words, topics): log P(word | topic)

    @classmethod
    def fit(cls, user_posts: Iterable[list[str]], catalog: Catalog, alpha: float = 0.1) -> TopicModel:
        """Fit on each user's posts (one list of texts per user); empty when nothing names a topic."""
        topics = sorted(catalog.by_topic)
        at = {t: i for i, t in enumerate(topics)}
        vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        for posts in user_posts:
            mix = np.zeros(len(topics))
            for text in posts:
                for t in catalog.match_topics(frozenset(words(text))):
                    mix[at[t]] += 1
            if not mix.any():
                continue
            mix /= mix.sum()
            for text in posts:
                for w in content_words(text):
                    for k in np.flatnonzero(mix):
                        rows.append(vocab.setdefault(w, len(vocab)))
                        cols.append(k)
                        vals.append(mix[k])
        if not vocab:
            return cls(topics)
        counts = np.zeros((len(vocab), len(topics)))
        np.add.at(counts, (rows, cols), vals)
        counts += alpha
        return cls(topics, vocab, np.log(counts / counts.sum(axis=0, keepdims=True)))

    def posterior(self, text: str) -> np.ndarray:
        """P(topic | text) under a uniform prior; all zeros when the text has no known word."""
        ids = [self.vocab[w] for w in content_words(text) if w in self.vocab]
        if not ids:
            return np.zeros(len(self.topics))
        z = self.log_prob[ids].sum(axis=0)
        p = np.exp(z - z.max())
        return p / p.sum()
