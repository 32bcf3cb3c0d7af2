"""Which topics a text is about, learned from the users' posts with the campaigns' targeting as seeds.

Users post mostly about what they care about, and they click ads on those
topics. But a post seldom names a campaign's keywords ("this novel deserves
more readers" names no books campaign's term), and an embedding from a small
model does not separate topics well. So the topic of a post is learned:

1. seed: a post that names a term of a topic's pooled vocabulary (:meth:`Catalog.match_topics`);
2. a user's seeded posts give the user's topic mix, which labels all of that user's posts
   (people stay on their topics, so their unseeded posts are evidence too);
3. multinomial naive Bayes over those soft labels gives every word its topic weights;
4. a few rounds of EM relabel each post by its own words, its user's mix as the prior, and fit again.

A text's topic mix is then the naive-Bayes posterior; a user's is the mean over
their recent posts, which estimates how much the user cares about each topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from roost.ads.catalog import Catalog, words
from roost.ads.embedder import STOPWORDS

EM_ROUNDS = 3  # rounds of EM after the first fit (TopicModel.fit)
PRIOR_WEIGHT = 0.7  # of a user's seeded mix in a post's prior; the rest is uniform, so no topic is ruled out


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS and len(w) > 1]


@dataclass
class TopicModel:
    topics: list[str] = field(default_factory=list)
    vocab: dict[str, int] = field(default_factory=dict)
    log_prob: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (words, topics): log P(word | topic)

    @classmethod
    def fit(
        cls, user_posts: Iterable[list[str]], catalog: Catalog, alpha: float = 0.1, rounds: int = EM_ROUNDS
    ) -> TopicModel:
        """Fit on each user's posts (one list of texts per user); empty when nothing names a topic.

        The first fit labels every post with its user's seeded mix, so a word is
        spread over all of its users' topics ("album" about as much fashion as
        music, for users who care about both). Each of ``rounds`` of EM then
        labels a post with its own topic given its words and its user's mix
        (one topic a post, the user's mix as the prior) and fits again: the
        words sharpen onto the topics of the posts they occur in. English posts
        gain (90% -> 99.9% on their true topic in the sample), posts in other
        languages lose (es 34% -> 13%): their function words are no stopwords
        here and pull a language's posts together (BENCHMARKS.md, Ads).
        """
        topics = sorted(catalog.by_topic)
        at = {t: i for i, t in enumerate(topics)}
        vocab: dict[str, int] = {}
        mixes: list[np.ndarray] = []
        doc_user: list[int] = []
        rows: list[int] = []
        cols: list[int] = []
        for posts in user_posts:
            mix = np.zeros(len(topics))
            for text in posts:
                for t in catalog.match_topics(frozenset(words(text))):
                    mix[at[t]] += 1
            if not mix.any():
                continue
            mixes.append(mix / mix.sum())
            for text in posts:
                for w in content_words(text):
                    rows.append(len(doc_user))
                    cols.append(vocab.setdefault(w, len(vocab)))
                doc_user.append(len(mixes) - 1)
        if not vocab:
            return cls(topics)
        posts_words = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(doc_user), len(vocab)))
        prior = np.asarray(mixes)[doc_user]  # (posts, topics): each post's user's mix
        log_prior = np.log(PRIOR_WEIGHT * prior + (1 - PRIOR_WEIGHT) / len(topics))
        labels = prior
        for _ in range(rounds):
            log_prob = _word_log_probs(posts_words, labels, alpha)
            z = posts_words @ log_prob + log_prior
            labels = np.exp(z - z.max(axis=1, keepdims=True))
            labels /= labels.sum(axis=1, keepdims=True)
        return cls(topics, vocab, _word_log_probs(posts_words, labels, alpha))

    def posterior(self, text: str) -> np.ndarray:
        """P(topic | text) under a uniform prior; all zeros when the text has no known word."""
        ids = [self.vocab[w] for w in content_words(text) if w in self.vocab]
        if not ids:
            return np.zeros(len(self.topics))
        z = self.log_prob[ids].sum(axis=0)
        p = np.exp(z - z.max())
        return p / p.sum()


def _word_log_probs(posts_words: sparse.csr_matrix, labels: np.ndarray, alpha: float) -> np.ndarray:
    """log P(word | topic), (words, topics), from word counts per post and each post's topic weights."""
    counts = np.asarray(posts_words.T @ labels) + alpha
    return np.log(counts / counts.sum(axis=0, keepdims=True))
