"""Offline A/B of serving policies against a ground-truth click model.

Every policy serves the same sequence of (user, time) requests, spread over one
simulated day so pacing applies, each against a fresh copy of the campaigns.
A served ad is clicked with the probability the truth model gives for that
user, campaign and position, and the click goes through the real click path
(signed token, one charge).

The click model for model-matched serving is trained on the random policy's
log: an exploration bucket. Trained on its own log instead, it would only ever
see well-matched ads (every impression has high similarity), could not learn
what similarity is worth, and would lean on the campaign's past CTR instead.
Serving then shows ads where that log is thin (high interest), so after the
first ``recalibrate_after`` of its requests model-matched serving recalibrates
the click model on its own served impressions (``CTRModel.calibrated``) and
restates each campaign's expected clicks under it (``AdService.use_click_model``),
and the calibration table is measured on the requests after that.

Brand safety: every policy serves with the same probes, and each row counts the
impressions of strict advertisers in requests whose context holds a
ground-truth unsafe post (``strict_next_to_unsafe``; the target is zero).
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from roost.ads.brand_safety import SafetyProbes
from roost.ads.campaign import CampaignSpec, from_micros, to_micros
from roost.ads.clicks import ClickSigner
from roost.ads.context import UserHistory
from roost.ads.embedder import EmbedFn
from roost.ads.pacing import DAY_S
from roost.ads.pctr import CTRModel, calibration, evaluate, events_to_arrays, train
from roost.ads.retrieval import embed_in_batches
from roost.ads.service import AdRequest, AdsConfig, AdService
from roost.ads.store import AdStore
from roost.errors import UserError


class ClickModel(Protocol):
    def p_click(self, user_id: str, campaign_id: str, position: int) -> float: ...


@dataclass
class SimConfig:
    requests: int = 2000
    slots: int = 2
    seed: int = 0
    start: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the first simulated day
    # the requests are spread evenly over this many days: more requests for a finer measure need not mean more
    # requests per user per day (frequency caps and daily budgets are per day)
    days: int = 1
    # a policy with a click model recalibrates it (isotonic, CTRModel.calibrated) on its own served impressions
    # after this share of the requests (``recalibrate``), and the calibration table is measured on the requests
    # after it either way: the exploration log's model runs 40-50% high on the ads serving picks
    recalibrate_after: float = 0.3
    recalibrate: bool = True


# Every policy fills empty slots run-of-network, so all deliver the same impressions.
POLICIES = {
    "random": AdsConfig(retrieval="random", use_pctr=False, fill=True),
    "keyword": AdsConfig(retrieval="keyword", use_pctr=False, fill=True),
    "model+pctr": AdsConfig(retrieval="model", use_pctr=True, fill=True),
}


def _clock(value: list[float]):
    return lambda: value[0]


def shared_cache(embed: EmbedFn) -> EmbedFn:
    """Remember every text's vector, so the policies do not embed the same users' posts again."""
    memo: dict[str, np.ndarray] = {}

    def cached(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            memo.update(zip(missing, np.asarray(embed(missing), dtype=np.float32)))
        return np.stack([memo[t] for t in texts])

    return cached


def run_policy(
    name: str,
    campaigns: list[CampaignSpec],
    history: UserHistory,
    truth: ClickModel,
    embed: EmbedFn,
    space: str,
    cfg: SimConfig,
    store: AdStore,
    ctr: CTRModel | None = None,
    safety: SafetyProbes | None = None,
    unsafe_posts: frozenset[str] = frozenset(),
    config: AdsConfig | None = None,
) -> dict:
    """Serve ``cfg.requests`` requests with policy ``name`` (``config``, else ``POLICIES[name]``); ``unsafe_posts``
    (ground truth) are the post ids next to which a strict advertiser's ad is counted: one whose own brand-safety
    threshold is at or below the default (an advertiser who set 0.9 asked for less care than one who set nothing)."""
    # simulated time runs thousands of times faster than real time: a live-state cache that ages in real time
    # would keep a campaign's spend for many simulated decisions, as many as the machine's speed allows, so
    # every decision reads it (results repeat on any machine)
    config = dataclasses.replace(config or POLICIES[name], live_state_max_age_s=0.0)
    store.add_campaigns(campaigns, now=cfg.start)
    default = config.default_safety_threshold
    strict = {c.id for c in campaigns if c.brand_safety_threshold is not None and c.brand_safety_threshold <= default}
    now = [cfg.start]
    service = AdService(
        store,
        ClickSigner(b"simulator-secret-0123456789abcdef"),
        embed=embed,
        space=space,
        history=history,
        ctr=ctr,
        safety=safety,
        config=config,
        clock=_clock(now),
        seed=cfg.seed,
    )
    calibrated_from = 0  # the calibration table is measured on the events from here on
    users = sorted(u for u in history.recent if history.recent[u])
    if not users:
        raise UserError("the corpus has no users with posts to simulate")
    pick, clicks_rng = random.Random(cfg.seed), random.Random(cfg.seed + 1)
    unsafe_requests = strict_next_to_unsafe = 0
    switch = int(cfg.requests * cfg.recalibrate_after) if ctr is not None and cfg.recalibrate_after > 0 else 0
    for i in tqdm(range(cfg.requests), desc=f"simulating {name}", unit="req"):
        if i == switch > 0:
            raw, y = events_to_arrays(store.events())
            calibrated_from = len(y)
            if cfg.recalibrate and 0 < y.sum() < len(y):  # a fit needs clicks and non-clicks
                service.use_click_model(ctr.calibrated(raw, y))
        now[0] = cfg.start + DAY_S * cfg.days * i / cfg.requests
        user = pick.choice(users)
        ads = service.serve(AdRequest(user_id=user, slots=cfg.slots))
        if any(post_id in unsafe_posts for post_id, _ in history.recent[user]):
            unsafe_requests += 1
            strict_next_to_unsafe += sum(ad.campaign_id in strict for ad in ads)
        for ad in ads:
            if clicks_rng.random() < truth.p_click(user, ad.campaign_id, ad.position):
                service.click(ad.click_token)
    events = store.events()
    y = np.array([int(e["clicked"]) for e in events])
    p = np.array([e["pctr"] for e in events])
    spend = sum(store.campaign_view(c.id or "")["spend_micros"] for c in campaigns)
    budget = sum(to_micros(c.budget) for c in campaigns)
    impressions, clicks = len(events), sum(int(e["clicked"]) for e in events)
    return {
        "policy": name,
        "requests": cfg.requests,
        "impressions": impressions,
        "clicks": clicks,
        "ctr": clicks / impressions if impressions else 0.0,
        "revenue": from_micros(spend),
        "rpm": from_micros(spend) * 1000 / impressions if impressions else 0.0,
        "pctr_auc": evaluate(y, p, float(y.mean()) if len(y) else 0.0)["auc"] if len(set(y)) == 2 else float("nan"),
        "budget_use": spend / budget,
        "unsafe_requests": unsafe_requests,  # requests whose context holds a ground-truth unsafe post
        "strict_next_to_unsafe": strict_next_to_unsafe,  # strict advertisers' impressions in those
        "calibration": calibration(y[calibrated_from:], p[calibrated_from:]) if len(y) > calibrated_from else None,
    }


def simulate(
    campaigns: list[CampaignSpec],
    history: UserHistory,
    truth: ClickModel,
    embed: EmbedFn,
    space: str,
    cfg: SimConfig | None = None,
    policies: tuple[str, ...] = tuple(POLICIES),
    safety: SafetyProbes | None = None,
    unsafe_posts: frozenset[str] = frozenset(),
    configs: dict[str, AdsConfig] | None = None,
) -> list[dict]:
    """One result row per policy (see :func:`run_policy` for the columns), random first; every policy serves
    with the same brand-safety probes (``safety``; None: none, as a server without a safety model). ``configs``
    replaces some policies' serving settings (else :data:`POLICIES`; e.g. another ``ctr_exponent``)."""
    configs = {**POLICIES, **(configs or {})}
    cfg = cfg or SimConfig()
    if any(c.id is None for c in campaigns):
        raise UserError("simulated campaigns need ids: the truth model knows campaigns by id")
    embed = shared_cache(embed)
    # every request's context is some user's recent posts: embed them all up front, in batches
    embed_in_batches(
        embed,
        sorted({text for posts in history.recent.values() for _, text in posts}),
        batch_size=64,
        desc="embedding users' posts",
    )
    rows, ctr = [], None
    with tempfile.TemporaryDirectory(prefix="roost-sim-") as tmp:
        for name in sorted(policies, key=lambda p: p != "random"):
            store = AdStore(Path(tmp) / f"{name}.db", synchronous="NORMAL")  # throwaway: no fsync per event
            rows.append(
                run_policy(
                    name, campaigns, history, truth, embed, space, cfg, store, ctr, safety, unsafe_posts, configs[name]
                )
            )
            if name == "random":
                ctr = train(*events_to_arrays(store.events()))
    return rows
