"""Simulator revenue of model-matched + pCTR against keyword-only (issue 16), over seeds, sizes and safety probes.

Every row is one ``roost ads simulate`` run (:func:`roost.ads.simulator.simulate`): random, keyword and
model+pctr serve the same requests through the same ``AdService`` (same caps, reserve, pacing, brand safety and
run-of-network fill), differing only in retrieval and pCTR; the ratio is model+pctr's RPM over keyword's from
the same run. ``--exponents`` sets ``AdsConfig.ctr_exponent`` for every policy (keyword and random have one
pCTR for all candidates, so it changes only model+pctr). ``--probes`` runs without and/or with the workspace's
brand-safety probes (``roost ads train-safety`` first). "strict" counts impressions of advertisers whose own
threshold is at or below the default in requests whose context holds a ground-truth unsafe post (target 0).

``--true-topics`` adds model+pctr with a perfect per-post topic classifier (each post's ground-truth topic as
its topic mix; it peeks too): how much better topic inference could add.

``--ceiling`` adds, per run, model+pctr with the truth's click probability as its pCTR: it peeks at the
simulator's ground truth, so it is no policy, only the most this auction could earn on model+pctr's
candidates with perfect click prediction (without the campaign propensity, which the truth does not need).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/ads_revenue.py --workspace WS --sample WS/sample \\
        --runs 2000x1 10000x5 --seeds 0 1 --probes off on --exponents 1 0.5 [--ceiling]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from pathlib import Path

import numpy as np


def truth_service(truth):
    """An ``AdService`` whose pCTR, where the policy uses one, is the truth's click probability (ceiling only)."""
    from roost.ads.eligibility import eligible
    from roost.ads.service import AdService

    class TruthCTR:
        def __init__(self, user: str, ids: list[str], base_rate: float):
            self.user, self.ids, self.base_rate = user, ids, base_rate

        def predict(self, raw: np.ndarray) -> np.ndarray:
            raw = np.atleast_2d(raw)
            if len(raw) != len(self.ids):  # the winners' logged pCTR after the auction: not used for revenue
                return np.full(len(raw), self.base_rate)
            return np.array([truth.p_click(self.user, cid, int(pos)) for cid, pos in zip(self.ids, raw[:, 2])])

    class TruthService(AdService):
        def serve(self, req):
            self._user = req.user_id
            return super().serve(req)

        def _auction(self, cands, ctx, slots, first_position, activity):
            cfg, arrays = self.config, self.catalog.arrays
            if cfg.use_pctr and self._user is not None:  # the rows the service predicts: the eligible ones
                ok = eligible(
                    arrays, self.catalog.campaigns, cands.rows, ctx, cfg.default_safety_threshold,
                    cfg.default_frequency_cap,
                )  # fmt: skip
                ids = [arrays.ids[r] for r in cands.subset(ok).rows.tolist()]
                self.ctr = TruthCTR(self._user, ids, self.ctr.base_rate)
            return super()._auction(cands, ctx, slots, first_position, activity)

    return TruthService


def true_topics_service(text_topic: dict[str, str]):
    """An ``AdService`` whose topic model gives each post its ground-truth topic, one-hot (bound only): what a
    perfect per-post topic classifier would give the interest share and the topic candidates."""
    from roost.ads.service import AdService

    class TrueTopics(AdService):
        def _fit_topics(self) -> None:
            super()._fit_topics()
            model, topic_at, _ = self._topics

            def posterior(text: str) -> np.ndarray:
                mix = np.zeros(len(model.topics))
                if text_topic.get(text) in topic_at:
                    mix[topic_at[text_topic[text]]] = 1.0
                return mix

            self._topics = (model, topic_at, posterior)

    return TrueTopics


def post_topics_by_text(corpus, sample: Path) -> dict[str, str]:
    """Each corpus post's text -> its ground-truth topic (posts without one are left out)."""
    from roost.corpus.schema import iter_batches

    rows = map(json.loads, (sample / "truth" / "post_topics.jsonl").read_text().splitlines())
    topic = {r["id"]: r["topic"] for r in rows if r.get("topic")}
    out = {}
    for batch in iter_batches(corpus, "posts", columns=["id", "text"]):
        cols = batch.to_pydict()
        out.update((text, topic[pid]) for pid, text in zip(cols["id"], cols["text"]) if pid in topic)
    return out


@contextlib.contextmanager
def serving_with(service_class):
    """Run the simulator's policies with ``service_class`` in place of ``AdService``."""
    import roost.ads.simulator as sim

    before = sim.AdService
    sim.AdService = service_class
    try:
        yield
    finally:
        sim.AdService = before


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, required=True, help="an ingested workspace of a `roost sample`")
    p.add_argument("--sample", type=Path, required=True, help="the `roost sample` folder (ads.json, truth/)")
    p.add_argument("--embedder", default="hashing")
    p.add_argument("--runs", nargs="+", default=["2000x1"], help="REQUESTSxDAYS, e.g. 2000x1 10000x5")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--probes", nargs="+", choices=["off", "on"], default=["off", "on"])
    p.add_argument("--exponents", type=float, nargs="+", default=[0.5])
    p.add_argument("--ceiling", action="store_true", help="add model+pctr with the truth as pCTR (peeks; a bound)")
    p.add_argument(
        "--true-topics",
        action="store_true",
        help="add model+pctr with each post's ground-truth topic as its topic mix (peeks; a bound)",
    )
    args = p.parse_args()

    from roost.ads.brand_safety import SafetyProbes
    from roost.ads.campaign import parse_campaigns
    from roost.ads.context import UserHistory
    from roost.ads.embedder import resolve_embedder
    from roost.ads.setup import safety_path
    from roost.ads.simulator import POLICIES, SimConfig, simulate
    from roost.sample.truth import ClickModel
    from roost.workspace import Workspace

    ws = Workspace(args.workspace)
    specs = parse_campaigns(json.loads((args.sample / "ads.json").read_text()), str(args.sample / "ads.json"))
    truth = ClickModel.load(args.sample)
    embed, space = resolve_embedder(ws, args.embedder)
    history = UserHistory.from_corpus(ws.corpus)
    rows = map(json.loads, (args.sample / "truth" / "post_topics.jsonl").read_text().splitlines())
    unsafe_posts = frozenset(r["id"] for r in rows if r.get("unsafe"))
    text_topic = post_topics_by_text(ws.corpus, args.sample) if args.true_topics else {}
    probes = {"off": None}
    if "on" in args.probes:
        probes["on"] = SafetyProbes.load(safety_path(ws), embed)
    out = []
    for run in args.runs:
        requests, days = (int(x) for x in run.split("x"))
        for seed in args.seeds:
            for probe in args.probes:
                for exponent in args.exponents:
                    configs = {k: dataclasses.replace(c, ctr_exponent=exponent) for k, c in POLICIES.items()}
                    cfg = SimConfig(requests=requests, days=days, seed=seed)
                    kinds = [("model+pctr", None)] + ([("truth as pCTR", truth_service(truth))] if args.ceiling else [])
                    if args.true_topics:
                        kinds.append(("true topics", true_topics_service(text_topic)))
                    for label, service_class in kinds:
                        kind_configs = dict(configs)
                        if label == "truth as pCTR":  # the truth needs no per-campaign correction
                            kind_configs["model+pctr"] = dataclasses.replace(
                                configs["model+pctr"], propensity_prior_clicks=None
                            )
                        with serving_with(service_class) if service_class else contextlib.nullcontext():
                            res = {r["policy"]: r for r in simulate(
                                specs, history, truth, embed, space, cfg, safety=probes[probe],
                                unsafe_posts=unsafe_posts, configs=kind_configs,
                            )}  # fmt: skip
                        k, m = res["keyword"], res["model+pctr"]
                        out.append(
                            f"| {requests:,} x {days} | {seed} | {probe} | {exponent:g} | {label} | {k['ctr']:.3f} "
                            f"| {k['rpm']:.1f} | {m['ctr']:.3f} | {m['rpm']:.1f} | **{m['rpm'] / k['rpm']:.2f}x** "
                            f"| {k['strict_next_to_unsafe']} / {m['strict_next_to_unsafe']} of {k['unsafe_requests']} |"
                        )
                        print(out[-1], flush=True)
    print(
        "\n| requests x days | seed | probes | ctr_exponent | model row | keyword CTR | keyword RPM | model CTR "
        "| model RPM | ratio | strict next to unsafe (keyword / model, of requests) |"
    )
    print("|---|---:|---|---:|---|---:|---:|---:|---:|---:|---|")
    print("\n".join(out))


if __name__ == "__main__":
    main()
