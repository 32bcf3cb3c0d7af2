"""Brand safety on TweetEval: the model-based classifier against TF-IDF + logistic regression, same run.

For each task (offensive, hate): train on ``train``, report macro-F1 and AUC on
``val``. Classifiers:

- ``tfidf+lr`` (the peer): word 1-2-gram TF-IDF, logistic regression;
- ``probe:hashing``: roost's brand-safety probe (``SafetyProbes``, logistic
  regression) on the hashed bag-of-words embedding the server uses without a model;
- ``probe:model``: the same probe on the workspace model's embeddings (what
  ``roost serve`` uses when the workspace has a model), with ``--workspace``.

The probes are scored at 0.5, as served (``AdsConfig.default_safety_threshold``);
TF-IDF + LR too. Class weights are balanced for every classifier (as
``roost ads train-safety`` does for the network's signals).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/safety.py --tweeteval ../shared/data/tweeteval --workspace WS
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def load(root: Path, task: str, split: str) -> tuple[list[str], np.ndarray]:
    from roost.ads.brand_safety import read_labelled

    return read_labelled(root / task / f"{split}_text.txt", root / task / f"{split}_labels.txt")


def scores(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import f1_score, roc_auc_score

    return {"macro_f1": float(f1_score(y, p > 0.5, average="macro")), "auc": float(roc_auc_score(y, p))}


def tfidf_lr(train: tuple[list[str], np.ndarray], val: tuple[list[str], np.ndarray]) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    fit = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced").fit(vec.fit_transform(train[0]), train[1])
    return scores(val[1], fit.predict_proba(vec.transform(val[0]))[:, 1])


def probe(embed, space: str, train: tuple[list[str], np.ndarray], val: tuple[list[str], np.ndarray]) -> dict:
    from roost.ads.brand_safety import SafetyProbes
    from roost.ads.retrieval import embed_in_batches

    probes = SafetyProbes(space=space)
    probes.add("x", embed_in_batches(embed, train[0]), train[1], {1}, balanced=True)
    return scores(val[1], probes.scores(embed_in_batches(embed, val[0])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tweeteval", type=Path, required=True)
    ap.add_argument("--tasks", nargs="+", default=["offensive", "hate"])
    ap.add_argument("--workspace", type=Path, help="a workspace with a trained model (adds probe:model)")
    args = ap.parse_args()

    from roost.ads.embedder import HashingEmbedder, model_embedder
    from roost.workspace import Workspace

    embedders = [("probe:hashing", HashingEmbedder(), HashingEmbedder().space)]
    if args.workspace:
        embed, space = model_embedder(Workspace(args.workspace))
        embedders.append(("probe:model", embed, space))
    print(f"{'task':<10} {'classifier':<15} {'macro-F1':>8} {'AUC':>6} {'seconds':>8}")
    for task in args.tasks:
        train, val = load(args.tweeteval, task, "train"), load(args.tweeteval, task, "val")
        runs = [("tfidf+lr", lambda train=train, val=val: tfidf_lr(train, val))]
        runs += [(name, lambda e=e, s=s, train=train, val=val: probe(e, s, train, val)) for name, e, s in embedders]
        for name, run in runs:
            t0 = time.perf_counter()
            m = run()
            print(
                f"{task:<10} {name:<15} {m['macro_f1']:>8.3f} {m['auc']:>6.3f} {time.perf_counter() - t0:>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
