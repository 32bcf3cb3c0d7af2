"""One ad decision: context -> candidates -> eligibility -> pacing -> pCTR -> auction -> logged impressions.

The HTTP routes, the simulator and the benchmark all go through :class:`AdService`,
so what is measured is what is served.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from roost.ads.auction import rank_scores, run_auction, scores
from roost.ads.brand_safety import SafetyProbes
from roost.ads.candidates import Candidates, Context, most_similar_creatives
from roost.ads.catalog import CampaignArrays, Catalog, words
from roost.ads.clicks import ClickSigner
from roost.ads.context import UserHistory
from roost.ads.eligibility import RequestContext, eligible, frequency_cap
from roost.ads.embedder import EmbedFn
from roost.ads.live import LiveStates
from roost.ads.money import LiveState
from roost.ads.pacing import PacingConfig, admitted, participations
from roost.ads.pctr import FEATURES, CTRModel, expected_clicks, smoothed_ctr, with_propensity
from roost.ads.retrieval import CreativeIndex, no_match_floor
from roost.ads.sensitive import SensitivePhrases
from roost.ads.served_counts import CLICKS, EXPECTED, IMPRESSIONS, ServedCounts
from roost.ads.store import AdStore, Click, Impression, utc_day
from roost.ads.topics import TopicModel
from roost.errors import UserError

RETRIEVAL = ("model", "keyword", "random")


@dataclass
class AdsConfig:
    retrieval: str = "model"  # model: ANN over creative embeddings + keyword/topic match; keyword; random
    use_pctr: bool = True  # False: every ad gets the base rate (rank by bid)
    # the auction ranks by expected value per impression x pCTR ** (ctr_exponent - 1) (roost.ads.auction): 1 is
    # plain bid x pCTR; 0.5 keeps part of a well-matched ad's pCTR lead in its price (simulator revenue +2-5%,
    # CTR -2-4%: BENCHMARKS.md, Ads); no effect when every candidate has one pCTR (use_pctr False)
    ctr_exponent: float = 0.5
    # pCTR is the click model's times the campaign's clicks over its expected clicks so far, with this many
    # pseudo clicks on both sides (roost.ads.pctr.campaign_propensity); None: the click model's alone. 10, not
    # 3: the same revenue, and every simulator decile with 100+ clicks within 20% of its rate (BENCHMARKS.md, Ads)
    propensity_prior_clicks: float | None = 10.0
    ann_candidates: int = 100  # creatives fetched from the ANN index
    term_candidates: int = 200  # campaigns fetched by keyword/topic match
    min_topic_weight: float = 0.1  # topics the context is at least this much about bring their top bidders
    reserve_cpm_micros: int = 100_000  # least eCPM an ad must reach (0.10 per 1000 impressions)
    default_safety_threshold: float = 0.5
    sensitive_phrases: bool = True  # context naming a sensitive event scores 1.0 unsafe (roost.ads.sensitive)
    # impressions of one campaign per user per UTC day, for campaigns that set no frequency_cap of their own
    # (None: uncapped); counted from ads.db's impressions, so it holds across server restarts
    default_frequency_cap: int | None = 3
    max_slots: int = 10
    # a candidate neither on the context's topics (min_topic_weight) nor naming its terms must be more similar
    # to the context than this share of creative pairs on disjoint topics are to each other (calibrated on the
    # catalog at start): a context that matches nothing gets no targeted ad (an empty list; run-of-network
    # only with ``fill``). None: no threshold
    no_match_quantile: float | None = 0.99
    fill: bool = False  # fill slots targeting left empty with random eligible ads (run-of-network)
    # how stale a campaign's status/budget/spend may be when it enters an auction (roost.ads.live: money is
    # settled again under the database's lock when impressions are written; 0 reads them for every decision)
    live_state_max_age_s: float = 1.0
    pacing: PacingConfig = field(default_factory=PacingConfig)

    def __post_init__(self):
        if self.retrieval not in RETRIEVAL:
            raise UserError(f"retrieval must be one of {RETRIEVAL}, got {self.retrieval!r}")
        if self.default_frequency_cap is not None and self.default_frequency_cap < 1:
            raise UserError(f"default_frequency_cap must be at least 1 or None, got {self.default_frequency_cap}")
        if not 0.0 <= self.ctr_exponent <= 1.0:
            raise UserError(f"ctr_exponent must be between 0 and 1, got {self.ctr_exponent}")


@dataclass
class AdRequest:
    user_id: str | None = None
    query: str | None = None
    context_text: str | None = None
    context_post_ids: list[str] = field(default_factory=list)
    slots: int = 1
    lang: str | None = None
    # campaigns already shown on this page (a timeline asks once per ad slot): none of them is served again
    exclude_campaign_ids: list[str] = field(default_factory=list)


@dataclass
class ServedAd:
    impression_id: str
    campaign_id: str
    creative_id: int
    text: str
    landing_url: str
    click_token: str
    price_micros: int
    position: int
    pctr: float
    why: dict = field(default_factory=dict)  # "why this ad": the logged features and the targeting terms matched
    bid_type: str = "cpc"  # what price_micros buys: a click (cpc) or 1,000 impressions (cpm)


class AdService:
    def __init__(
        self,
        store: AdStore,
        signer: ClickSigner,
        *,
        embed: EmbedFn | None = None,
        space: str = "",
        history: UserHistory | None = None,
        ctr: CTRModel | None = None,
        safety: SafetyProbes | None = None,
        sensitive: SensitivePhrases | None = None,
        config: AdsConfig | None = None,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        index_path: Path | None = None,
    ):
        self.store, self.signer = store, signer
        self.config = config or AdsConfig()
        if self.config.retrieval == "model" and embed is None:
            raise UserError("model retrieval needs an embedding function (train a model, or use --embedder hashing)")
        if safety is not None and safety.space != space:
            raise UserError(
                f"brand-safety probes were trained in embedding space {safety.space!r}, "
                f"serving uses {space!r}: run `roost ads train-safety` again"
            )
        self.embed, self.space = embed, space
        self.history = history or UserHistory()
        self.ctr = ctr or CTRModel()
        self.safety, self.sensitive = safety, sensitive or SensitivePhrases()
        self.clock = clock
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)  # pacing's draws, one per throttled candidate
        self._lock = threading.Lock()
        self.catalog = Catalog(store)
        self.live = LiveStates(store, self.config.live_state_max_age_s)
        self.index = CreativeIndex(store, embed, space, index_path) if embed is not None else None
        if self.index is not None and self.index.add(list(self.catalog.creatives.values())):
            self.index.save()  # the next start loads it instead of building the graph again
        self._campaign_ids = list(self.catalog.campaigns)
        self._min_similarity = no_match_floor(self.catalog, self.index, self.config.no_match_quantile)
        self.counts = ServedCounts(store.click_counts())
        self.counts.of(self.catalog.arrays, np.zeros(0, np.int64))  # its table built now, not in a decision
        # text -> (embedding, brand-safety score), oldest first
        self._vectors: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()
        self._sync = None  # follow_catalog's poller
        self._fit_topics()

    def _fit_topics(self) -> None:
        """(Re)learn the topics' words; one attribute, swapped whole, so a decision never sees half of a refit."""
        model = TopicModel.fit(([text for _, text in posts] for posts in self.history.recent.values()), self.catalog)
        self._topics = (model, {t: i for i, t in enumerate(model.topics)}, lru_cache(maxsize=16384)(model.posterior))

    def _embed_and_score(self, texts: list[str], keep: int = 16_384) -> tuple[np.ndarray, float]:
        """Embeddings of ``texts`` and their highest brand-safety score (0 without probes), the texts not seen
        lately computed in one batch (one forward for a user's posts).

        Why the score is kept with the vector: a text's score depends only on the text and its vector, and the
        texts of timelines and pages come back (a user's recent posts, a post's context), so a text seen lately
        costs neither an embedding nor a scoring (BENCHMARKS.md, Ads: repeated contexts).
        """
        with self._lock:
            known = {t: self._vectors[t] for t in texts if t in self._vectors}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            vecs = np.asarray(self.embed(missing), dtype=np.float32)
            unsafe = self.safety.scores(missing, vecs).tolist() if self.safety is not None else [0.0] * len(missing)
            known.update(zip(missing, zip(vecs, unsafe)))
            with self._lock:
                self._vectors.update((t, known[t]) for t in missing)
                while len(self._vectors) > keep:
                    self._vectors.popitem(last=False)
        return np.stack([known[t][0] for t in texts]), max(known[t][1] for t in texts)

    def follow_catalog(self, every_s: float = 2.0) -> None:
        """Pick up campaigns other replicas create or edit in the shared database (roost.ads.catalog_sync)."""
        from roost.ads.catalog_sync import CatalogSync

        if self._sync is None:
            self._sync = CatalogSync(self, every_s)

    def close(self) -> None:
        """Stop following the catalog (the server calls this on shutdown)."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    def use_click_model(self, ctr: CTRModel) -> None:
        """Serve with ``ctr`` from now on, each campaign's expected clicks restated under it over the whole log
        (:func:`roost.ads.pctr.expected_clicks`), so its propensity compares its clicks with what this model
        expects, not the last one."""
        self.store.restate_expected_clicks(expected_clicks(ctr, self.store.events()))
        counts = ServedCounts(self.store.click_counts())
        counts.of(self.catalog.arrays, np.zeros(0, np.int64))  # its table built here, not in a decision
        self.counts, self.ctr = counts, ctr

    def refresh(self, campaign_ids: list[str]) -> None:
        """Pick up campaigns created or edited since start (the admin API calls this)."""
        with self._lock:
            loaded = self.catalog.update(campaign_ids)
            if self.index is not None:
                self.index.add(loaded)
            self._campaign_ids = list(self.catalog.campaigns)
            self._min_similarity = no_match_floor(self.catalog, self.index, self.config.no_match_quantile)
            self._fit_topics()
        self.live.forget(campaign_ids)

    # --- the decision ----------------------------------------------------------------------

    def context_texts(self, req: AdRequest) -> list[str]:
        """The query; else the given text and posts; else the user's recent posts (one text each)."""
        if req.query:
            return [req.query]
        parts = [req.context_text] if req.context_text else []
        if req.context_post_ids:
            parts += self.history.post_texts(req.context_post_ids)
        if not parts and req.user_id:
            parts = [text for _, text in self.history.recent.get(req.user_id, [])]
        return [p for p in parts if p and p.strip()]

    def context(self, req: AdRequest) -> Context:
        texts = self.context_texts(req)
        word_sets = [frozenset(words(t)) for t in texts]
        vec, unsafe = None, 0.0
        if self.embed is not None and texts:
            vecs, unsafe = self._embed_and_score(texts)
            vec = vecs.mean(axis=0)
        if self.config.sensitive_phrases:
            unsafe = max(unsafe, self.sensitive.score(texts))
        model, topic_at, posterior = self._topics
        topic_mix = np.array([posterior(t) for t in texts]).reshape(len(texts), len(model.topics))
        return Context(texts, word_sets, topic_mix, topic_at, set().union(*word_sets), vec, unsafe)

    def _random_candidates(self, ctx: Context) -> Candidates:
        """Run-of-network: a random sample of campaigns, each with a random creative."""
        cat = self.catalog
        ids = self.rng.sample(self._campaign_ids, min(self.config.term_candidates, len(self._campaign_ids)))
        creatives = [self.rng.choice(cat.campaigns[cid].creatives).id for cid in ids]
        arrays = cat.arrays
        rows = np.array([arrays.row[cid] for cid in ids], np.int64)
        return self._gathered(ctx, arrays, rows, np.array(creatives, np.int64), np.full(len(ids), np.nan))

    def _candidates(self, ctx: Context) -> Candidates:
        """Candidate campaigns, each with one creative, its similarity and its term share.

        Both features are filled in whatever the retrieval, so every policy logs the same features.
        """
        cfg, arrays = self.config, self.catalog.arrays
        if cfg.retrieval == "random":
            return self._random_candidates(ctx)
        # catalog row -> its best ANN hit (index into keys; -1: found by keyword or topic, similarity to compute)
        found = dict.fromkeys(arrays.match_terms(list(ctx.present), cfg.term_candidates), -1)
        if cfg.retrieval == "model":
            self._topic_candidates(ctx, arrays, found)
        keys, sims = np.zeros(0, np.int64), np.zeros(0, np.float32)
        if cfg.retrieval == "model" and ctx.vec is not None:
            keys, sims = self.index.search(ctx.vec, cfg.ann_candidates)
            known = keys < len(arrays.creative_row)  # the index may hold creatives the catalog has not loaded
            hit_rows = np.where(known, arrays.creative_row[np.where(known, keys, 0)], -1).tolist()
            sim = sims.tolist()
            for i, row in enumerate(hit_rows):
                if row < 0:
                    continue
                had = found.get(row)
                if had is None or had < 0 or sim[i] > sim[had]:
                    found[row] = i
        rows = np.fromiter(found, np.int64, len(found))
        hit = np.fromiter(found.values(), np.int64, len(found))
        by_ann = hit >= 0
        at = np.where(by_ann, hit, 0)
        first = arrays.creative_ids[arrays.creative_ptr[rows]]
        creative_ids = np.where(by_ann, keys[at], first) if len(keys) else first
        similarity = np.where(by_ann, sims[at], np.nan) if len(keys) else np.full(len(rows), np.nan)
        cands = self._gathered(ctx, arrays, rows, creative_ids, similarity)
        floor = self._min_similarity
        if cfg.retrieval == "model" and floor is not None:
            cands = cands.subset((cands.term_share >= cfg.min_topic_weight) | (cands.similarity >= floor))
        return cands

    def _topic_candidates(self, ctx: Context, arrays: CampaignArrays, found: dict[int, int]) -> None:
        """Add the highest bidders of the topics the context is most about (up to ``term_candidates`` in all)."""
        limit = self.config.term_candidates
        weights = ctx.topic_weights()
        for topic in sorted(
            (t for t, w in weights.items() if w >= self.config.min_topic_weight), key=weights.get, reverse=True
        ):
            # of a topic's first ``limit`` campaigns at most len(found) are found already: enough to fill up
            for row in arrays.topic_rows.get(topic, np.zeros(0, np.int64))[:limit].tolist():
                if len(found) >= limit:
                    return
                if row not in found:
                    found[row] = -1

    def _gathered(
        self, ctx: Context, arrays: CampaignArrays, rows: np.ndarray, creative_ids: np.ndarray, sims: np.ndarray
    ) -> Candidates:
        """The campaigns at ``rows`` as candidates, with term shares, and similarity filled in where ``sims`` is
        NaN (one matrix product).

        Similarity is filled in whatever the retrieval, so every policy logs the same features. A keyword
        or topic match shows its creative most similar to the context (the first of the best, on a tie).
        """
        shares = ctx.term_shares(self.catalog, rows=rows)
        todo = np.flatnonzero(np.isnan(sims))
        sims = np.where(np.isnan(sims), 0.0, sims)
        if ctx.vec is not None and len(todo):
            # each one's options: all its creatives when the context is on its topics, else the one given
            creative_ids = creative_ids.copy()
            creative_ids[todo], sims[todo] = most_similar_creatives(
                arrays,
                lambda ids: self.index.similarity(ctx.vec, ids),
                rows[todo],
                creative_ids[todo],
                shares[todo] > 0,
            )
        return Candidates(rows, creative_ids, sims, shares)

    def serve(self, req: AdRequest) -> list[ServedAd]:
        cfg = self.config
        if not 1 <= req.slots <= cfg.max_slots:
            raise UserError(f"slots must be between 1 and {cfg.max_slots}, got {req.slots}")
        now = self.clock()
        day = utc_day(now)
        context = self.context(req)
        if not context.texts and cfg.retrieval != "random":
            return []
        ctx = RequestContext(
            now=now,
            user_id=req.user_id,
            unsafe_score=context.unsafe,
            lang=req.lang or (self.history.langs.get(req.user_id) if req.user_id else None),
            seen_today=self.store.user_impressions(req.user_id, day) if req.user_id else {},
            exclude=frozenset(req.exclude_campaign_ids),
        )
        activity = self.history.activity.get(req.user_id, 0) if req.user_id else 0
        present = context.present
        cands = self._candidates(context)
        placed = self._auction(cands, ctx, req.slots, 0, activity)
        if cfg.fill and len(placed) < req.slots:
            extra = self._random_candidates(context)
            extra = extra.subset(~np.isin(extra.rows, cands.rows))
            placed += self._auction(extra, ctx, req.slots - len(placed), len(placed), activity)
        if not placed:
            return []
        # logged with the slot each ad won (the auction predicted them all at the first slot)
        feats = np.array([features for *_, features in placed])
        pctr, expected = [self.ctr.base_rate] * len(placed), [0.0] * len(placed)
        if cfg.use_pctr:  # the click model's own pCTR is what each impression adds to its campaign's expected clicks
            model_p = self.ctr.predict(feats)
            counts = self.counts.of(self.catalog.arrays, np.array([self.catalog.arrays.row[c] for c, *_ in placed]))
            pctr = with_propensity(model_p, counts, cfg.propensity_prior_clicks).tolist()
            expected = model_p.tolist()
        impressions = [
            Impression(
                cid,
                creative_id,
                req.user_id,
                position,
                price,
                p,
                dict(zip(FEATURES, features)),
                now,
                frequency_cap=frequency_cap(self.catalog.campaigns[cid], cfg.default_frequency_cap),
                expected_clicks=e,
            )
            for (cid, creative_id, position, price, features), p, e in zip(placed, pctr, expected)
        ]
        settled: dict[str, dict[str, LiveState]] = {}
        kept = self.store.record_impressions(impressions, settled)
        # what this write changed (a CPM charge) or found changed (an ad dropped): the states it settled under
        # the database's lock are the fresh ones; a campaign the database no longer has is read again
        states = settled.get(day, {})
        self.live.put(day, states)
        self.live.forget(imp.campaign_id for imp in impressions if imp.campaign_id not in states)
        for imp in kept:
            self.counts.add(imp.campaign_id, IMPRESSIONS)
            self.counts.add(imp.campaign_id, EXPECTED, imp.expected_clicks)
        return [
            ServedAd(
                imp.id,
                imp.campaign_id,
                imp.creative_id,
                self.catalog.creatives[imp.creative_id].text,
                self.catalog.creatives[imp.creative_id].landing_url,
                self.signer.sign(imp.id, now),
                imp.price_micros,
                imp.position,
                imp.pctr,
                why={
                    **imp.features,
                    "pctr": imp.pctr,
                    "matched_terms": [
                        " ".join(t) for t in self.catalog.campaigns[imp.campaign_id].terms if present.issuperset(t)
                    ],
                },
                bid_type=self.catalog.campaigns[imp.campaign_id].bid_type,
            )
            for imp in kept
        ]

    def _auction(
        self, cands: Candidates, ctx: RequestContext, slots: int, first_position: int, activity: int
    ) -> list[tuple[str, int, int, int, list[float]]]:
        """Eligibility, pCTR and ranking in numpy over the candidates, then live state and pacing from the top.

        Returns (campaign id, creative id, position, price, logged features) for the winners. Why the top first:
        the features and the catalog's rules need no database, and GSP's outcome depends only on the best
        ``slots + 1`` candidates that may enter; so live state (status, budget, spend) is read for the best
        ranked few, more only when some of them may not enter, instead of for every candidate (most of a
        decision's database reads at 100k campaigns). Same winners and prices as checking them all first.
        """
        cfg = self.config
        arrays = self.catalog.arrays
        ok = eligible(
            arrays,
            self.catalog.campaigns,
            cands.rows,
            ctx,
            cfg.default_safety_threshold,
            cfg.default_frequency_cap,
        )
        cands = cands.subset(ok)
        n = len(cands.rows)
        if not n:
            return []
        counts = self.counts.of(arrays, cands.rows)
        raw = np.column_stack(
            [
                cands.similarity,
                cands.term_share,
                np.full(n, float(first_position)),
                smoothed_ctr(counts[:, 0], counts[:, 1]),
                np.full(n, float(activity)),
            ]
        )
        pctr = np.full(n, self.ctr.base_rate)
        if cfg.use_pctr:
            pctr = with_propensity(self.ctr.predict(raw), counts, cfg.propensity_prior_clicks)
        bid, cpc = arrays.bid_micros[cands.rows], arrays.cpc[cands.rows]
        rank = rank_scores(bid, cpc, pctr, cfg.ctr_exponent)
        ranked = np.flatnonzero(scores(bid, cpc, pctr) >= cfg.reserve_cpm_micros / 1000)
        ranked = ranked[np.argsort(-rank[ranked], kind="stable")]
        entrants = self._entrants(arrays, cands.rows, ranked, slots + 1, ctx.now)
        wins = run_auction(
            bid[entrants], cpc[entrants], pctr[entrants], slots, cfg.reserve_cpm_micros / 1000, cfg.ctr_exponent
        )
        placed = []
        for w in wins:
            k = int(entrants[w.index])
            features = raw[k].tolist()
            features[2] = float(first_position + w.position)  # the slot it won, as logged and predicted
            placed.append(
                (
                    arrays.ids[cands.rows[k]],
                    int(cands.creative_ids[k]),
                    first_position + w.position,
                    w.price_micros,
                    features,
                )
            )
        return placed

    def _entrants(
        self, arrays: CampaignArrays, rows: np.ndarray, ranked: np.ndarray, want: int, now: float
    ) -> np.ndarray:
        """The first ``want`` of ``ranked`` (indexes into the candidates' catalog ``rows``, best first) whose live
        state and pacing let them in, read a batch at a time (twice as many as still wanted, then double)."""
        day, found, at = utc_day(now), [], 0
        batch = 2 * want
        while len(found) < want and at < len(ranked):
            part = ranked[at : at + batch]
            at += len(part)
            batch *= 2
            enters, day_spend, daily_budget = self.live.arrays([arrays.ids[r] for r in rows[part].tolist()], day)
            enters &= admitted(participations(day_spend, daily_budget, now, self.config.pacing), self.np_rng)
            found.extend(part[enters].tolist())
        return np.array(found[:want], np.int64)

    def click(self, token: str) -> Click | None:
        """Verify a click token (BadToken if forged or expired) and record the click once."""
        impression_id = self.signer.verify(token, self.clock())
        click = self.store.record_click(impression_id, self.clock())
        if click is not None and not click.duplicate:
            if click.charged_micros:
                self.live.forget([click.campaign_id])
            self.counts.add(click.campaign_id, CLICKS)
        return click
