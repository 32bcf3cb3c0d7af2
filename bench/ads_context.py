"""Context matching: the share of free-text ad requests whose top ad is on the context's topic.

Contexts are posts the sample generator writes with another seed (so the corpus
never saw them; texts that are in the corpus are left out), English root posts
only, each with its ground-truth topic. Each is sent as ``context_text`` to
``AdService.serve`` (1 slot, no user); a hit is a top ad whose campaign's
ground-truth topics (``truth/campaign_topics.json``) include the context's,
counted over the contexts whose topic some campaign targets (an ad-less answer
is a miss there). For the others the right answer is no targeted ad: the share
that got none is reported too.

``--handwritten`` adds the texts of bench/data/ads_contexts.json: short contexts
a person would type, written by hand without looking at the sample's posts
(the generator's templates are what the first set shares with the corpus). Each
has the topic a reader gives it; some fit no campaign, some are unsafe (no
campaign with the default brand-safety threshold may answer them, and the
workspace's safety probes are loaded for them) and some are harmless texts with
the unsafe texts' words, which must still get ads. Every miss is printed.

    .venv/bin/python bench/ads_context.py --workspace WS --sample WS/sample [--embedder hashing] [--contexts 500] \
        [--handwritten]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path


def unseen_contexts(sample: Path, corpus_texts: set[str], n: int, seed: int = 12345) -> list[tuple[str, str]]:
    """(text, topic) for ``n`` English root posts the generator writes with ``seed``, none in the corpus."""
    from roost.sample.network import make_users
    from roost.sample.posts import PostMaker

    manifest = json.loads((sample / "manifest.json").read_text())
    users = make_users(random.Random(seed), manifest["config"]["users"], 0)
    posts = PostMaker(random.Random(seed + 1), users, 0, 86_400_000).organic(n * 6)
    out = [
        (p.text, p.topic)
        for p in posts
        if p.parent is None and p.lang == "en" and p.topic and p.text not in corpus_texts
    ]
    return out[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--sample", type=Path, required=True)
    ap.add_argument("--embedder", default="auto", choices=("auto", "model", "hashing"))
    ap.add_argument("--contexts", type=int, default=500)
    ap.add_argument("--handwritten", action="store_true", help="also the hand-written contexts (see above)")
    args = ap.parse_args()

    from roost.ads.brand_safety import SafetyProbes
    from roost.ads.campaign import parse_campaigns
    from roost.ads.clicks import ClickSigner
    from roost.ads.context import UserHistory
    from roost.ads.embedder import resolve_embedder
    from roost.ads.service import AdRequest, AdsConfig, AdService
    from roost.ads.setup import safety_path
    from roost.ads.store import AdStore
    from roost.corpus.schema import read_table
    from roost.workspace import Workspace

    ws = Workspace(args.workspace)
    texts = set(read_table(ws.corpus, "posts", ["text"]).column("text").to_pylist())
    contexts = unseen_contexts(args.sample, texts, args.contexts)
    topics = json.loads((args.sample / "truth" / "campaign_topics.json").read_text())
    specs = parse_campaigns(json.loads((args.sample / "ads.json").read_text()), "ads.json")
    embed, space = resolve_embedder(ws, args.embedder)
    history = UserHistory.from_corpus(ws.corpus)  # as the server has it: the topic model learns from it
    with tempfile.TemporaryDirectory() as tmp:
        store = AdStore(Path(tmp) / "ads.db", synchronous="NORMAL")
        store.add_campaigns(specs)
        for retrieval in ("keyword", "model"):

            def service(safety=None, retrieval=retrieval):
                return AdService(
                    store,
                    ClickSigner(b"bench-secret-0123456789abcdef0123"),
                    embed=embed,
                    space=space,
                    history=history,
                    safety=safety,
                    config=AdsConfig(retrieval=retrieval, default_frequency_cap=None),
                    seed=0,
                )

            svc = service()
            covered = {t for ts in topics.values() for t in ts}
            hits = abstained = 0
            for text, topic in contexts:
                ads = svc.serve(AdRequest(context_text=text))
                if topic in covered:
                    hits += bool(ads) and topic in topics.get(ads[0].campaign_id, [])
                else:
                    abstained += not ads
            n_cov = sum(t in covered for _, t in contexts)
            print(
                f"{retrieval:<8} contexts {len(contexts)} ({n_cov} on a targeted topic)  "
                f"top ad on topic {hits / max(n_cov, 1):.1%}  "
                f"no ad where no campaign fits {abstained / max(len(contexts) - n_cov, 1):.1%}",
                flush=True,
            )
            if args.handwritten:
                probes = SafetyProbes.load(safety_path(ws), embed) if safety_path(ws).is_file() else None
                handwritten(service(probes), topics, retrieval, AdRequest)


def handwritten(svc, topics: dict[str, list[str]], retrieval: str, AdRequest) -> None:
    """Serve each hand-written context once (1 slot, no user); print the shares and every miss."""
    cases = json.loads((Path(__file__).parent / "data" / "ads_contexts.json").read_text())
    strict = svc.config.default_safety_threshold
    answers = {
        t: svc.serve(AdRequest(context_text=t))
        for t in [*(t for ts in cases["topics"].values() for t in ts), *cases["none"], *cases["unsafe"]]
        + cases["safe_lookalikes"]
    }

    def topic_of(text: str) -> str:
        ads = answers[text]
        return ",".join(topics.get(ads[0].campaign_id, [])) if ads else "no ad"

    def on_topic(text: str, topic: str) -> bool:
        ads = answers[text]
        return bool(ads) and topic in topics.get(ads[0].campaign_id, [])

    def blocked(text: str) -> bool:  # no campaign with the default threshold (or a stricter one) answers it
        return not any(
            (svc.catalog.campaigns[a.campaign_id].safety_threshold or strict) <= strict for a in answers[text]
        )

    checks = [  # (kind, text, right?)
        *((topic, t, on_topic(t, topic)) for topic, ts in cases["topics"].items() for t in ts),
        *(("none", t, not answers[t]) for t in cases["none"]),
        *(("unsafe", t, blocked(t)) for t in cases["unsafe"]),
        *(("lookalike", t, bool(answers[t])) for t in cases["safe_lookalikes"]),
    ]

    def share(kind: str) -> str:
        mine = [ok for k, _, ok in checks if k == kind]
        return f"{sum(mine)}/{len(mine)}"

    n_topic = sum(len(ts) for ts in cases["topics"].values())
    right = sum(ok for kind, _, ok in checks if kind in cases["topics"])
    print(
        f"{retrieval:<8} hand-written ({'with' if svc.safety else 'without'} safety probes): "
        f"top ad on topic {right}/{n_topic} ({right / n_topic:.0%})  no ad where none fits {share('none')}  "
        f"unsafe blocked {share('unsafe')}  harmless look-alikes served {share('lookalike')}"
    )
    print("\n".join(f"  {kind:<12} {t!r} -> {topic_of(t)}" for kind, t, ok in checks if not ok), flush=True)


if __name__ == "__main__":
    main()
