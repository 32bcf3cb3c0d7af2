"""The serving snapshot of campaigns: targeting, bids and creatives held in memory.

What changes with every request (status, spend) is read from the database per
decision; what changes only when an advertiser edits a campaign is kept here
and refreshed by :meth:`Catalog.update`. Keyword and topic targeting terms are
in an inverted index keyed by their first word, so matching a context costs a
few dict lookups whatever the number of campaigns.

A topic's vocabulary is every keyword of every campaign that targets the topic:
what advertisers in a topic say about it, pooled. A post on gaming that names
"controller" is on a gaming campaign's topic even if that campaign's own
keywords are "console" and "gaming pc"; matching posts against the pooled
vocabulary estimates which topics a user posts about.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from roost.ads.store import AdStore

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word tokens; '#running' and 'running' are the same word."""
    return _WORD.findall(text.lower())


@dataclass
class Creative:
    id: int
    campaign_id: str
    text: str
    landing_url: str


@dataclass
class CampaignInfo:
    id: str
    bid_type: str
    bid_micros: int
    max_bid_micros: int
    terms: list[tuple[str, ...]]  # keywords and topics, each as a word tuple
    topics: frozenset[str]  # targeted topics, lower-cased
    languages: frozenset[str]
    start: float | None
    end: float | None
    hours: frozenset[int] | None
    frequency_cap: int | None
    safety_threshold: float | None
    creatives: list[Creative] = field(default_factory=list)


@dataclass
class CampaignArrays:
    """What eligibility and the auction read of every campaign, one entry per row of ``ids``.

    Why: a decision looks at a hundred and more candidates; gathering their rows
    with one fancy index and deciding with numpy costs less than a Python object
    per candidate. Absent values: start -inf, end +inf, hours all 24 bits set,
    frequency cap and safety threshold NaN (the server's default applies).
    """

    ids: list[str]
    row: dict[str, int]  # campaign id -> row
    bid_micros: np.ndarray
    cpc: np.ndarray  # True: bid per click, False: per 1000 impressions
    start: np.ndarray
    end: np.ndarray
    hours: np.ndarray  # bit h set: may serve in UTC hour h
    frequency_cap: np.ndarray
    safety_threshold: np.ndarray
    has_languages: np.ndarray  # language targeting is checked in Python, for these few only
    topic_set: np.ndarray  # index into topic_sets: campaigns share a handful of topic sets
    topic_sets: list[frozenset[str]]
    term_ptr: np.ndarray  # campaign row r's terms are term_ids[term_ptr[r]:term_ptr[r + 1]]
    term_ids: np.ndarray
    terms_by_word: dict[str, list[tuple[tuple[str, ...], int]]]  # first word -> (term, term id)
    term_count: int
    # first word -> term -> [(rank by bid, row)], highest bid first: keyword retrieval (match_terms)
    postings: dict[str, dict[tuple[str, ...], list[tuple[int, int]]]]
    topic_rows: dict[str, np.ndarray]  # topic -> rows of the campaigns targeting it, highest bid first
    creative_ptr: np.ndarray  # row r's creatives are creative_ids[creative_ptr[r]:creative_ptr[r + 1]], first shown
    creative_ids: np.ndarray
    creative_row: np.ndarray  # creative id -> its campaign's row (-1: no such creative)

    @classmethod
    def of(cls, campaigns: list[CampaignInfo]) -> CampaignArrays:
        nan = float("nan")
        sets: dict[frozenset[str], int] = {}
        term_of: dict[tuple[str, ...], int] = {}
        ids = [[term_of.setdefault(t, len(term_of)) for t in c.terms] for c in campaigns]
        by_word: dict[str, list[tuple[tuple[str, ...], int]]] = defaultdict(list)
        for term, i in term_of.items():
            by_word[term[0]].append((term, i))
        postings: dict[str, dict[tuple[str, ...], list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
        topic_rows: dict[str, list[int]] = defaultdict(list)
        for rank, row in enumerate(sorted(range(len(campaigns)), key=lambda r: -campaigns[r].bid_micros)):
            for term in campaigns[row].terms:
                postings[term[0]][term].append((rank, row))
            for topic in campaigns[row].topics:
                topic_rows[topic].append(row)
        creative_ids = np.array([cr.id for c in campaigns for cr in c.creatives], np.int64)
        creative_row = np.full(int(creative_ids.max(initial=0)) + 1, -1, np.int64)
        creative_row[creative_ids] = np.repeat(np.arange(len(campaigns)), [len(c.creatives) for c in campaigns])
        return cls(
            ids=[c.id for c in campaigns],
            row={c.id: i for i, c in enumerate(campaigns)},
            bid_micros=np.array([c.bid_micros for c in campaigns], np.float64),
            cpc=np.array([c.bid_type == "cpc" for c in campaigns], bool),
            start=np.array([-np.inf if c.start is None else c.start for c in campaigns], np.float64),
            end=np.array([np.inf if c.end is None else c.end for c in campaigns], np.float64),
            hours=np.array(
                [(1 << 24) - 1 if c.hours is None else sum(1 << h for h in c.hours) for c in campaigns], np.int64
            ),
            frequency_cap=np.array([nan if c.frequency_cap is None else c.frequency_cap for c in campaigns]),
            safety_threshold=np.array([nan if c.safety_threshold is None else c.safety_threshold for c in campaigns]),
            has_languages=np.array([bool(c.languages) for c in campaigns], bool),
            topic_set=np.array([sets.setdefault(c.topics, len(sets)) for c in campaigns], np.int64),
            topic_sets=list(sets),
            term_ptr=np.cumsum([0] + [len(t) for t in ids]),
            term_ids=np.array([i for t in ids for i in t], np.int64),
            terms_by_word=dict(by_word),
            term_count=len(term_of),
            postings={word: dict(terms) for word, terms in postings.items()},
            topic_rows={topic: np.array(rows, np.int64) for topic, rows in topic_rows.items()},
            creative_ptr=np.cumsum([0] + [len(c.creatives) for c in campaigns]),
            creative_ids=creative_ids,
            creative_row=creative_row,
        )

    def match_terms(self, context_words: list[str] | set[str], limit: int) -> set[int]:
        """Rows of campaigns with a keyword or topic whose words all occur in the context (at most ``limit``).

        Per word, the terms that match are found first and only their campaigns walked, merged by bid:
        a word that starts a long posting list of terms the context does not complete costs nothing.
        """
        present = set(context_words)
        found: set[int] = set()
        for word in present:
            matched = [
                rows for term, rows in self.postings.get(word, {}).items() if all(w in present for w in term[1:])
            ]
            for _, row in matched[0] if len(matched) == 1 else heapq.merge(*matched):
                if len(found) >= limit:
                    return found
                found.add(row)
        return found

    def targeted(self, rows: np.ndarray, present: frozenset[str] | set[str]) -> np.ndarray:
        """Per row: does one of the campaign's keywords or topics occur in these words?

        The terms the words complete are found first (a few dict lookups), then each candidate's term ids
        are looked up in one gather: no Python per candidate.
        """
        hit = np.zeros(self.term_count, bool)
        hit[
            [i for w in present for term, i in self.terms_by_word.get(w, ()) if all(x in present for x in term[1:])]
        ] = True
        starts = self.term_ptr[rows]
        lens = self.term_ptr[rows + 1] - starts
        at = np.arange(int(lens.sum())) + np.repeat(starts - (np.cumsum(lens) - lens), lens)
        owner = np.repeat(np.arange(len(rows)), lens)
        return np.bincount(owner[hit[self.term_ids[at]]], minlength=len(rows)) > 0


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def campaign_info(row, creatives: list[Creative]) -> CampaignInfo:
    targeting = json.loads(row["targeting"])
    schedule = json.loads(row["schedule"]) if row["schedule"] else {}
    terms = {tuple(words(t)) for t in targeting.get("keywords", []) + targeting.get("topics", [])}
    hours = schedule.get("hours")
    return CampaignInfo(
        id=row["id"],
        bid_type=row["bid_type"],
        bid_micros=row["bid_micros"],
        max_bid_micros=row["max_bid_micros"],
        terms=sorted(t for t in terms if t),
        topics=frozenset(t.lower() for t in targeting.get("topics", [])),
        languages=frozenset(lang.lower() for lang in targeting.get("languages", [])),
        start=_ts(schedule.get("start")),
        end=_ts(schedule.get("end")),
        hours=frozenset(hours) if hours is not None else None,
        frequency_cap=row["frequency_cap"],
        safety_threshold=row["brand_safety_threshold"],
        creatives=creatives,
    )


class Catalog:
    def __init__(self, store: AdStore):
        self.store = store
        self.campaigns: dict[str, CampaignInfo] = {}
        self.creatives: dict[int, Creative] = {}
        self._topic_terms: dict[str, list[tuple[tuple[str, ...], str]]] = {}  # first word -> (term, topic)
        self.by_topic: dict[str, list[str]] = {}  # topic -> campaign ids, highest bid first
        self.arrays = CampaignArrays.of([])
        self.update(None)

    def update(self, ids: list[str] | None) -> list[Creative]:
        """Reload all campaigns (``None``) or the given ones; returns the creatives (re)loaded."""
        by_campaign: dict[str, list[Creative]] = defaultdict(list)
        loaded = [
            Creative(r["id"], r["campaign_id"], r["text"], r["landing_url"]) for r in self.store.creative_rows(ids)
        ]
        for c in loaded:
            by_campaign[c.campaign_id].append(c)
        rows = self.store.campaign_rows(ids)
        if ids is None:
            self.campaigns, self.creatives = {}, {}
        for row in rows:
            old = self.campaigns.get(row["id"])
            for c in old.creatives if old else []:
                self.creatives.pop(c.id, None)
            info = campaign_info(row, by_campaign[row["id"]])
            self.campaigns[info.id] = info
            self.creatives.update((c.id, c) for c in info.creatives)
        self._index_terms()
        self.arrays = CampaignArrays.of(list(self.campaigns.values()))  # swapped whole: a decision sees one
        return loaded

    def _index_terms(self) -> None:
        """Each topic's pooled vocabulary by first word, and its campaigns highest bid first."""
        vocab: dict[str, set[tuple[str, ...]]] = defaultdict(set)
        by_topic: dict[str, list[str]] = defaultdict(list)
        for info in sorted(self.campaigns.values(), key=lambda c: -c.bid_micros):
            for topic in info.topics:
                vocab[topic].update(info.terms)
                by_topic[topic].append(info.id)
        topic_index: dict[str, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
        for topic, terms in vocab.items():
            for term in terms:
                topic_index[term[0]].append((term, topic))
        self._topic_terms, self.by_topic = dict(topic_index), dict(by_topic)

    def match_topics(self, present: frozenset[str] | set[str]) -> set[str]:
        """Topics with a vocabulary term whose words all occur in these words."""
        return {
            topic
            for word in present
            for term, topic in self._topic_terms.get(word, ())
            if all(w in present for w in term[1:])
        }
