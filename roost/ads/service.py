"""One ad decision: context -> candidates -> eligibility -> pacing -> pCTR -> auction -> logged impressions.

The HTTP routes, the simulator and the benchmark all go through :class:`AdService`,
so what is measured is what is served.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from roost.ads.auction import Bid, run_auction
from roost.ads.brand_safety import SafetyProbes
from roost.ads.catalog import CampaignInfo, Catalog, Creative, words
from roost.ads.clicks import ClickSigner
from roost.ads.context import UserHistory
from roost.ads.eligibility import RequestContext, ineligible_reason
from roost.ads.embedder import EmbedFn
from roost.ads.pacing import PacingConfig, admit
from roost.ads.pctr import FEATURES, CTRModel, smoothed_ctr
from roost.ads.retrieval import CreativeIndex
from roost.ads.store import AdStore, Click, Impression, utc_day

RETRIEVAL = ("model", "keyword", "random")


@dataclass
class AdsConfig:
    retrieval: str = "model"          # model: ANN over creative embeddings + keyword/topic match; keyword; random
    use_pctr: bool = True             # False: every ad gets the base rate (rank by bid)
    ann_candidates: int = 100         # creatives fetched from the ANN index
    term_candidates: int = 200        # campaigns fetched by keyword/topic match
    reserve_cpm_micros: int = 100_000  # least eCPM an ad must reach (0.10 per 1000 impressions)
    default_safety_threshold: float = 0.5
    max_slots: int = 10
    fill: bool = False                # fill slots targeting left empty with random eligible ads (run-of-network)
    pacing: PacingConfig = field(default_factory=PacingConfig)

    def __post_init__(self):
        if self.retrieval not in RETRIEVAL:
            raise ValueError(f"retrieval must be one of {RETRIEVAL}, got {self.retrieval!r}")


@dataclass
class AdRequest:
    user_id: str | None = None
    query: str | None = None
    context_text: str | None = None
    context_post_ids: list[str] = field(default_factory=list)
    slots: int = 1
    lang: str | None = None


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


@dataclass
class _Candidate:
    info: CampaignInfo
    creative: Creative
    similarity: float | None = None  # None until computed (stays None without an embedding)
    term_match: bool = False


class AdService:
    def __init__(self, store: AdStore, signer: ClickSigner, *, embed: EmbedFn | None = None, space: str = "",
                 history: UserHistory | None = None, ctr: CTRModel | None = None,
                 safety: SafetyProbes | None = None, config: AdsConfig | None = None,
                 clock: Callable[[], float] = time.time, seed: int | None = None, index_path: Path | None = None):
        self.store, self.signer = store, signer
        self.config = config or AdsConfig()
        if self.config.retrieval == "model" and embed is None:
            raise ValueError("model retrieval needs an embedding function (train a model, or use --embedder hashing)")
        if safety is not None and safety.space != space:
            raise ValueError(f"brand-safety probes were trained in embedding space {safety.space!r}, "
                             f"serving uses {space!r}: run `roost ads train-safety` again")
        self.embed, self.space = embed, space
        self.history = history or UserHistory()
        self.ctr = ctr or CTRModel()
        self.safety = safety
        self.clock = clock
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        self.catalog = Catalog(store)
        self.index = CreativeIndex(store, embed, space, index_path) if embed is not None else None
        if self.index is not None and self.index.add(list(self.catalog.creatives.values())):
            self.index.save()  # the next start loads it instead of building the graph again
        self._campaign_ids = list(self.catalog.campaigns)
        self.counts = {cid: list(v) for cid, v in store.click_counts().items()}
        self._embed_one = lru_cache(maxsize=4096)(self._embed_uncached)

    def _embed_uncached(self, text: str) -> np.ndarray:
        return np.asarray(self.embed([text]), dtype=np.float32)[0]

    def refresh(self, campaign_ids: list[str]) -> None:
        """Pick up campaigns created or edited since start (the admin API calls this)."""
        with self._lock:
            loaded = self.catalog.update(campaign_ids)
            if self.index is not None:
                self.index.add(loaded)
            self._campaign_ids = list(self.catalog.campaigns)

    # --- the decision ----------------------------------------------------------------------

    def context_text(self, req: AdRequest) -> str:
        if req.query:
            return req.query
        parts = [req.context_text] if req.context_text else []
        if req.context_post_ids:
            parts += self.history.post_texts(req.context_post_ids)
        if not parts and req.user_id:
            parts.append(self.history.user_text(req.user_id))
        return "\n".join(p for p in parts if p)

    def _random_candidates(self, present: set[str], vec: np.ndarray | None) -> dict[str, _Candidate]:
        """Run-of-network: a random sample of campaigns, each with a random creative."""
        cat = self.catalog
        ids = self.rng.sample(self._campaign_ids, min(self.config.term_candidates, len(self._campaign_ids)))
        found = {cid: _Candidate(cat.campaigns[cid], self.rng.choice(cat.campaigns[cid].creatives),
                                 term_match=cat.targets(cat.campaigns[cid], present)) for cid in ids}
        return self._with_similarity(found, vec)

    def _candidates(self, present: set[str], vec: np.ndarray | None) -> dict[str, _Candidate]:
        """Candidate campaigns, each with one creative, its similarity and whether its terms match.

        Both features are filled in whatever the retrieval, so every policy logs the same features.
        """
        cfg, cat = self.config, self.catalog
        if cfg.retrieval == "random":
            return self._random_candidates(present, vec)
        found: dict[str, _Candidate] = {}
        for cid in cat.match_terms(list(present), cfg.term_candidates):
            info = cat.campaigns[cid]
            found[cid] = _Candidate(info, info.creatives[0], term_match=True)
        if vec is not None and cfg.retrieval == "model":
            for creative_id, sim in self.index.search(vec, cfg.ann_candidates):
                creative = cat.creatives.get(creative_id)
                if creative is None:
                    continue
                cand = found.get(creative.campaign_id)
                if cand is None:
                    info = cat.campaigns[creative.campaign_id]
                    found[info.id] = _Candidate(info, creative, sim, term_match=cat.targets(info, present))
                elif cand.similarity is None or sim > cand.similarity:
                    cand.creative, cand.similarity = creative, sim
        return self._with_similarity(found, vec)

    def _with_similarity(self, found: dict[str, _Candidate], vec: np.ndarray | None) -> dict[str, _Candidate]:
        """Fill in similarity whatever the retrieval (one matrix product), so every policy logs the same features.

        A keyword match shows its creative most similar to the context.
        """
        todo = [c for c in found.values() if c.similarity is None]
        if vec is None or not todo:
            return found
        options = [c.info.creatives if c.term_match else [c.creative] for c in todo]
        sims = self.index.similarity(vec, [cr.id for opts in options for cr in opts]).tolist()
        at = 0
        for cand, opts in zip(todo, options):
            best = max(range(len(opts)), key=lambda i: sims[at + i])
            cand.creative, cand.similarity = opts[best], sims[at + best]
            at += len(opts)
        return found

    def serve(self, req: AdRequest) -> list[ServedAd]:
        cfg = self.config
        if not 1 <= req.slots <= cfg.max_slots:
            raise ValueError(f"slots must be between 1 and {cfg.max_slots}, got {req.slots}")
        now = self.clock()
        day = utc_day(now)
        text = self.context_text(req)
        if not text.strip() and cfg.retrieval != "random":
            return []
        vec = self._embed_one(text) if self.embed is not None and text.strip() else None
        unsafe = float(self.safety.scores(vec)[0]) if self.safety is not None and vec is not None else 0.0
        ctx = RequestContext(now=now, user_id=req.user_id, unsafe_score=unsafe,
                             lang=req.lang or (self.history.langs.get(req.user_id) if req.user_id else None),
                             seen_today=self.store.user_impressions(req.user_id, day) if req.user_id else {})
        activity = self.history.activity.get(req.user_id, 0) if req.user_id else 0
        present = set(words(text))
        cands = self._candidates(present, vec)
        placed = self._auction(cands, ctx, req.slots, 0, activity)
        if cfg.fill and len(placed) < req.slots:
            extra = {cid: c for cid, c in self._random_candidates(present, vec).items() if cid not in cands}
            placed += self._auction(extra, ctx, req.slots - len(placed), len(placed), activity)
        impressions = []
        for cand, position, price in placed:
            feats = self._features(cand, position, activity)
            p = float(self.ctr.predict(np.array(feats))[0]) if cfg.use_pctr else self.ctr.base_rate
            impressions.append(Impression(
                cand.info.id, cand.creative.id, req.user_id, position, price, p, dict(zip(FEATURES, feats)), now))
        kept = self.store.record_impressions(impressions)
        with self._lock:
            for imp in kept:
                self.counts.setdefault(imp.campaign_id, [0, 0])[0] += 1
        return [ServedAd(imp.id, imp.campaign_id, imp.creative_id, self.catalog.creatives[imp.creative_id].text,
                         self.catalog.creatives[imp.creative_id].landing_url, self.signer.sign(imp.id, now),
                         imp.price_micros, imp.position, imp.pctr,
                         why={**imp.features, "pctr": imp.pctr, "matched_terms": [
                             " ".join(t) for t in self.catalog.campaigns[imp.campaign_id].terms if present.issuperset(t)]})
                for imp in kept]

    def _auction(self, cands: dict[str, _Candidate], ctx: RequestContext, slots: int, first_position: int,
                 activity: int) -> list[tuple[_Candidate, int, int]]:
        """Eligibility and pacing, then pCTR and GSP: (candidate, position, price) for the winners."""
        cfg = self.config
        states = self.store.live_states(list(cands), utc_day(ctx.now))
        live = []
        for cid, cand in cands.items():
            state = states.get(cid)
            if ineligible_reason(cand.info, state, ctx, cfg.default_safety_threshold) is None and \
                    admit(state.day_spend_micros, state.daily_budget_micros, ctx.now, self.rng, cfg.pacing):
                live.append(cand)
        if not live:
            return []
        raw = np.array([self._features(c, first_position, activity) for c in live], dtype=np.float64)
        pctr = self.ctr.predict(raw) if cfg.use_pctr else np.full(len(live), self.ctr.base_rate)
        bids = [Bid(i, c.info.bid_type, c.info.bid_micros, float(p)) for i, (c, p) in enumerate(zip(live, pctr))]
        wins = run_auction(bids, slots, cfg.reserve_cpm_micros / 1000)
        return [(live[w.bid.key], first_position + w.position, w.price_micros) for w in wins]

    def _features(self, cand: _Candidate, position: int, activity: int) -> list[float]:
        imps, clicks = self.counts.get(cand.info.id, (0, 0))
        return [cand.similarity or 0.0, float(cand.term_match), float(position), smoothed_ctr(imps, clicks), float(activity)]

    def click(self, token: str) -> Click | None:
        """Verify a click token (BadToken if forged or expired) and record the click once."""
        impression_id = self.signer.verify(token, self.clock())
        click = self.store.record_click(impression_id, self.clock())
        if click is not None and not click.duplicate:
            with self._lock:
                self.counts.setdefault(click.campaign_id, [0, 0])[1] += 1
        return click
