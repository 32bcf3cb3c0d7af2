"""A decision's context texts and candidate campaigns, as the service's numpy passes read them.

Why arrays: a decision at 100k campaigns has a hundred and more candidates; eligibility, pacing, the
features, pCTR and the auction each make one numpy pass over them instead of a Python object and call
per candidate (BENCHMARKS.md, Ads: "Decision speed at 100k campaigns").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from roost.ads.catalog import CampaignArrays, Catalog


@dataclass
class Candidates:
    """A decision's candidate campaigns as arrays: one entry each, with the creative it would show.

    Why arrays of catalog rows (campaign ids only for the few the auction reaches): there are a hundred and
    more per decision at 100k campaigns, and eligibility, pacing, features, pCTR and the auction each make
    one numpy pass over them (BENCHMARKS.md, Ads).
    """

    rows: np.ndarray  # rows of the catalog's arrays
    creative_ids: np.ndarray  # the creative each would show
    similarity: np.ndarray  # cosine to the context (0 without an embedding)
    term_share: np.ndarray  # how much the context's texts are on its topics or name its terms (0..1)

    def subset(self, keep: np.ndarray) -> Candidates:
        """The candidates where ``keep`` is True (this object itself when all are kept: most decisions)."""
        if keep.all():
            return self
        return Candidates(self.rows[keep], self.creative_ids[keep], self.similarity[keep], self.term_share[keep])


def most_similar_creatives(
    arrays: CampaignArrays,
    similarity: Callable[[np.ndarray], np.ndarray],
    rows: np.ndarray,
    given: np.ndarray,
    every: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per campaign at ``rows``: the creative most similar to the context (the first of the best, on a tie)
    among all of its creatives where ``every``, else the ``given`` one; as (creative ids, similarities).

    ``similarity`` scores creative ids against the context; it is called once for all the options (one
    matrix product), which are laid out campaign after campaign and reduced per campaign in numpy.
    """
    ptr = arrays.creative_ptr
    lens = np.where(every, ptr[rows + 1] - ptr[rows], 1)
    starts = np.cumsum(lens) - lens
    within = np.arange(int(lens.sum())) - np.repeat(starts, lens)
    options = np.where(
        np.repeat(every, lens), arrays.creative_ids[np.repeat(ptr[rows], lens) + within], np.repeat(given, lens)
    )
    scored = similarity(options)
    best = np.maximum.reduceat(scored, starts)
    pick = np.minimum.reduceat(np.where(scored == np.repeat(best, lens), np.arange(len(scored)), len(scored)), starts)
    return options[pick], scored[pick]


@dataclass
class Context:
    """The request's context texts, each kept apart.

    A user's recent posts are scored one by one and averaged: the share of them on
    a campaign's topic estimates how much the user cares about it (the user's
    interest), where one joined text only says whether the topic came up at all.
    """

    texts: list[str]
    word_sets: list[frozenset[str]]
    topic_mix: np.ndarray  # (texts, topics): each text's topic posterior (TopicModel)
    topic_at: dict[str, int]  # topic -> column of topic_mix
    present: set[str]  # every word of every text (candidate lookup)
    vec: np.ndarray | None  # mean of the texts' unit vectors: its dot with a creative is the mean similarity
    unsafe: float = 0.0  # the highest brand-safety score over the texts
    on_topic_cache: dict[frozenset[str], np.ndarray] = field(default_factory=dict)  # topic set -> per-text share

    def term_shares(self, catalog: Catalog, ids: list[str] | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """Per campaign (``ids``, or their catalog ``rows``): mean over the texts of how much each is on its
        topics (1 when it names one of its terms).

        Each text's on-topic share is computed once per distinct topic set (campaigns share a handful),
        then spread over the campaigns with one index, and the texts naming a campaign's term count 1.
        """
        arrays = catalog.arrays
        rows = np.array([arrays.row[cid] for cid in ids], np.int64) if rows is None else rows
        if not self.word_sets or not len(rows):
            return np.zeros(len(rows))
        sets, at = np.unique(arrays.topic_set[rows], return_inverse=True)
        shares = np.stack([self._on_topic(arrays.topic_sets[k]) for k in sets.tolist()], axis=1)[:, at.reshape(-1)]
        for t, ws in enumerate(self.word_sets):
            shares[t, arrays.targeted(rows, ws)] = 1.0
        return shares.mean(axis=0)

    def _on_topic(self, topics: frozenset[str]) -> np.ndarray:
        """Each text's posterior mass on these topics, capped at 1 (cached: campaigns share topic sets)."""
        shares = self.on_topic_cache.get(topics)
        if shares is None:
            cols = [self.topic_at[t] for t in topics if t in self.topic_at]
            n = len(self.word_sets)
            shares = np.minimum(1.0, self.topic_mix[:, cols].sum(axis=1)) if cols else np.zeros(n)
            self.on_topic_cache[topics] = shares
        return shares

    def topic_weights(self) -> dict[str, float]:
        """The context's topic mix: mean of its texts' posteriors."""
        mean = self.topic_mix.mean(axis=0) if len(self.topic_mix) else np.zeros(len(self.topic_at))
        return {t: float(mean[i]) for t, i in self.topic_at.items()}
