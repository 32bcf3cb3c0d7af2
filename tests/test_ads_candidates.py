"""A decision's candidates built over catalog rows in numpy match the one-campaign-at-a-time rule they replaced.

The rule (roost.ads.service): campaigns naming the context's terms, then the top bidders of its topics, up to
``term_candidates``; the ANN hits replace a found campaign's creative when more similar; a campaign found by
term or topic shows its creative most similar to the context when the context is on its topics (the first
of the best on a tie), else its first creative.
"""

import random

import numpy as np

from roost.ads.campaign import CampaignSpec
from roost.ads.clicks import ClickSigner
from roost.ads.embedder import HashingEmbedder
from roost.ads.served_counts import CLICKS, IMPRESSIONS
from roost.ads.service import AdRequest, AdsConfig, AdService
from roost.ads.store import AdStore
from roost.sample.topics import BANKS


def catalog(n: int, rng: random.Random) -> list[CampaignSpec]:
    topics = sorted(BANKS)
    specs = []
    for i in range(n):
        topic = rng.choice(topics)
        bank = BANKS[topic]
        creatives = [
            f"{rng.choice(bank.brands)} {rng.choice(bank.products)}: {rng.choice(bank.opinions)}"
            for _ in range(rng.choice([1, 2, 3]))
        ]
        if len(creatives) == 3:
            creatives[2] = creatives[1]  # two equally similar creatives: the first of them is shown
        specs.append(
            CampaignSpec.model_validate(
                {
                    "id": f"c{i}",
                    "advertiser": f"adv {i % 7}",
                    "name": f"{topic} {i}",
                    "budget": 100,
                    "bid_type": "cpc",
                    "bid": round(rng.uniform(0.05, 2.0), 2),
                    "targeting": {"keywords": rng.sample(bank.keywords, 2), "topics": [topic]},
                    "creatives": [
                        {"text": t, "landing_url": f"https://ads.example/{i}/{k}"} for k, t in enumerate(creatives)
                    ],
                }
            )
        )
    return specs


def reference(svc: AdService, ctx) -> dict[str, tuple[int, float, float]]:
    """campaign id -> (creative id, similarity, term share), one campaign at a time, as decisions did before."""
    cfg, cat = svc.config, svc.catalog
    arrays = cat.arrays
    found = {
        arrays.ids[r]: (cat.campaigns[arrays.ids[r]].creatives[0], None)
        for r in arrays.match_terms(list(ctx.present), cfg.term_candidates)
    }
    weights = ctx.topic_weights()
    for topic in sorted((t for t, w in weights.items() if w >= cfg.min_topic_weight), key=weights.get, reverse=True):
        for cid in cat.by_topic.get(topic, ()):
            if len(found) < cfg.term_candidates and cid not in found:
                found[cid] = (cat.campaigns[cid].creatives[0], None)
    keys, sims = svc.index.search(ctx.vec, cfg.ann_candidates)
    for key, sim in zip(keys.tolist(), sims.tolist()):
        creative = cat.creatives[key]
        had = found.get(creative.campaign_id)
        if had is None or had[1] is None or sim > had[1]:
            found[creative.campaign_id] = (creative, sim)
    ids = list(found)
    shares = ctx.term_shares(cat, ids)
    todo = [k for k, (_, sim) in enumerate(found.values()) if sim is None]
    options = [cat.campaigns[ids[k]].creatives if shares[k] else [found[ids[k]][0]] for k in todo]
    # one product for all (a float32 product's last bit depends on how many rows it multiplies at once)
    scored = svc.index.similarity(ctx.vec, [c.id for opts in options for c in opts]).tolist()
    at = 0
    for k, opts in zip(todo, options):
        best = max(range(len(opts)), key=lambda i: scored[at + i])
        found[ids[k]] = (opts[best], scored[at + best])
        at += len(opts)
    out = {}
    for cid, share, (creative, sim) in zip(ids, shares.tolist(), found.values()):
        if share >= cfg.min_topic_weight or sim >= svc._min_similarity:
            out[cid] = (creative.id, sim, share)
    return out


def test_candidates_over_rows_match_the_one_at_a_time_rule(tmp_path):
    rng = random.Random(3)
    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    store.add_campaigns(catalog(400, rng))
    h = HashingEmbedder()
    # small limits, so the term and topic caps and the ANN's replacements all come into play
    config = AdsConfig(term_candidates=25, ann_candidates=30)
    svc = AdService(store, ClickSigner(b"0123456789abcdef0123456789abcdef"), embed=h, space=h.space, config=config)
    topics = sorted(BANKS)
    checked = replaced = tied = 0
    for _ in range(40):
        bank = BANKS[rng.choice(topics)]
        text = f"{rng.choice(bank.subjects)} {rng.choice(bank.claims)} {' '.join(rng.sample(bank.keywords, 2))}"
        ctx = svc.context(AdRequest(query=text))
        cands = svc._candidates(ctx)
        got = {
            svc.catalog.arrays.ids[r]: (c, s, t)
            for r, c, s, t in zip(
                cands.rows.tolist(), cands.creative_ids.tolist(), cands.similarity.tolist(), cands.term_share.tolist()
            )
        }
        assert len(got) == len(cands.rows)  # no campaign twice
        assert got == reference(svc, ctx)
        checked += len(got)
        replaced += sum(c != svc.catalog.campaigns[cid].creatives[0].id for cid, (c, _, _) in got.items())
        tied += sum(len(svc.catalog.campaigns[cid].creatives) == 3 for cid in got)
    assert checked > 500 and replaced > 20 and tied > 20  # the cases above were met, not only the plain one


def test_served_counts_carry_over_to_a_new_catalog_version(tmp_path):
    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    store.add_campaigns(catalog(5, random.Random(0)))
    h = HashingEmbedder()
    svc = AdService(store, ClickSigner(b"0123456789abcdef0123456789abcdef"), embed=h, space=h.space)
    svc.counts.add("c3", IMPRESSIONS)
    svc.counts.add("c3", IMPRESSIONS)
    svc.counts.add("c3", CLICKS)
    store.add_campaigns([catalog(6, random.Random(1))[5]])  # one more campaign: c5
    svc.refresh(["c5"])
    arrays = svc.catalog.arrays
    rows = np.array([arrays.row["c3"], arrays.row["c5"], arrays.row["c0"]])
    assert svc.counts.of(arrays, rows)[:, :2].tolist() == [[2.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
    svc.counts.add("c5", IMPRESSIONS)  # counted in the table the decisions read now
    assert svc.counts.of(arrays, rows)[:, :2].tolist() == [[2.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
