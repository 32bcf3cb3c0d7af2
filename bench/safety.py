"""Brand safety on TweetEval: model-based classifiers against TF-IDF + logistic regression, same run.

For each task (offensive, hate): train on ``train``, report macro-F1 and AUC on
``val``, and for every classifier the paired bootstrap interval (95%) of its
macro-F1 minus the peer's on ``val``. Classifiers:

- ``tfidf+lr`` (the peer): word 1-2-gram TF-IDF, logistic regression, C=4;
- ``tfidf+lr:cv``: the same with C chosen by cross-validation on train;
- ``probe:hashing``: the embedding-only probe roost served before (balanced
  logistic regression) on the hashed bag-of-words embedding the server uses without a model;
- ``probe:model``: the same probe on the workspace model's embeddings, with ``--workspace``;
- ``hybrid:cv``: word TF-IDF next to the model's embeddings (scaled by a weight),
  one logistic regression; C (1, 4, 16) and the weight (1, 2) chosen by 3-fold cross-validation on train;
- ``bpe:cv``: TF-IDF over the model's own tokens (1-2-grams of BPE ids) + LR, C by
  cross-validation: the tokenizer's share of ``bpe+emb:cv``, without the embeddings;
- ``bpe+emb:cv``: ``hybrid:cv`` with TF-IDF over the model's own tokens instead of words: what
  ``roost ads train-safety`` trains and the server scores (``roost.ads.safety_model.TokenProbe``).

Every choice (C, embedding weight) is made by stratified k-fold macro-F1 on
train only; val is only reported. Scored at 0.5, as served
(``AdsConfig.default_safety_threshold``); class weights balanced everywhere (as
``roost ads train-safety`` does for the network's signals). Embeddings are
cached under ``--cache`` (keyed by the model's space and the texts), since
embedding 23k tweets takes minutes on a loaded 2-core machine.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/safety.py --tweeteval ../shared/data/tweeteval --workspace WS
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from roost.ads.safety_model import cv_fit, fit_lr, macro_f1, model_tokens, stack, tfidf

Split = tuple[list[str], np.ndarray]


def load(root: Path, task: str, split: str) -> Split:
    from roost.labelled import read_labelled

    return read_labelled(root / task / f"{split}_text.txt", root / task / f"{split}_labels.txt")


def bootstrap_diff(y: np.ndarray, a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% paired bootstrap interval of macro-F1(a) - macro-F1(b) over resampled val examples."""
    rng = np.random.default_rng(seed)
    y, a, b = y.astype(bool), a > 0.5, b > 0.5
    diffs = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        diffs.append(macro_f1(y[i], a[i]) - macro_f1(y[i], b[i]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


def word_tfidf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


def tfidf_lr(train: Split, val: Split, make=None, emb: tuple[np.ndarray, np.ndarray] | None = None, cv=False):
    """Validation probabilities and the chosen parameters of (TF-IDF [+ weighted embeddings]) + LR: the same
    fit as roost's served probe (``roost.ads.safety_model.cv_fit``); ``make(n_texts)`` gives the TF-IDF."""
    e_tr, e_val = emb if emb else (None, None)
    vec, lr, chosen = cv_fit(train[0], train[1], make or (lambda n: word_tfidf()), e_tr, cv)
    p = lr.predict_proba(stack(vec.transform(val[0]), e_val, chosen["weight"]))[:, 1]
    return p, {k: v for k, v in chosen.items() if emb or k != "weight"}


def served(train: Split, val: Split, vecs: tuple[np.ndarray, np.ndarray], tokenize):
    """What ``roost ads train-safety`` trains and serving scores: ``SafetyProbes`` over tokens + embeddings."""
    from roost.ads.safety_model import TokenProbe

    probe = TokenProbe.fit(train[0], vecs[0], train[1], tokenize)
    return probe.scorer(tokenize)(val[0], vecs[1]), probe.chosen


def probe(vecs: tuple[np.ndarray, np.ndarray], y: np.ndarray):
    """The embedding-only probe roost served before (balanced LR, C=1)."""
    return fit_lr(vecs[0], y, 1.0).predict_proba(vecs[1])[:, 1], {}


def cached_embed(embed, space: str, texts: list[str], cache: Path | None) -> np.ndarray:
    from roost.ads.retrieval import embed_in_batches

    if cache is None:
        return embed_in_batches(embed, texts)
    key = hashlib.sha256(("\0".join([space, *texts])).encode()).hexdigest()[:20]
    path = cache / f"{key}.npy"
    if path.exists():
        return np.load(path)
    vecs = embed_in_batches(embed, texts)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs)
    return vecs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tweeteval", type=Path, required=True)
    ap.add_argument("--tasks", nargs="+", default=["offensive", "hate"])
    ap.add_argument("--workspace", type=Path, help="a workspace with a trained model (adds the model-based rows)")
    ap.add_argument("--cache", type=Path, default=Path("tmp/safety_cache"), help="embedding cache folder")
    ap.add_argument("--only", nargs="+", help="run only these classifiers (the peer, tfidf+lr, always runs)")
    args = ap.parse_args()

    from roost.ads.embedder import HashingEmbedder, model_embedder
    from roost.workspace import Workspace

    hashing = HashingEmbedder()
    model = None
    if args.workspace:
        from roost.embeddings import TextEmbedder

        loaded = TextEmbedder.from_dir(Workspace(args.workspace).model)
        embed, space = model_embedder(Workspace(args.workspace), loaded)
        model = (embed, space, loaded.tokenizer)
    print(f"{'task':<10} {'classifier':<14} {'macro-F1':>8} {'AUC':>6} {'vs peer (95% CI)':>22} {'sec':>6}  chosen")
    for task in args.tasks:
        train, val = load(args.tweeteval, task, "train"), load(args.tweeteval, task, "val")
        runs = classifiers(train, val, hashing, model, args.cache)
        report(task, [r for i, r in enumerate(runs) if i == 0 or not args.only or r[0] in args.only], val[1])


def classifiers(train: Split, val: Split, hashing, model, cache: Path | None) -> list[tuple[str, Callable]]:
    """(name, run) per classifier, the peer first; run() gives val probabilities and the chosen parameters."""

    def vecs(embed, space):
        return cached_embed(embed, space, train[0], cache), cached_embed(embed, space, val[0], cache)

    runs = [
        ("tfidf+lr", lambda: tfidf_lr(train, val)),
        ("tfidf+lr:cv", lambda: tfidf_lr(train, val, cv=True)),
        ("probe:hashing", lambda: probe(vecs(hashing, hashing.space), train[1])),
    ]
    if model:
        embed, space, tok = model
        runs += [
            ("probe:model", lambda: probe(vecs(embed, space), train[1])),
            ("hybrid:cv", lambda: tfidf_lr(train, val, emb=vecs(embed, space), cv=True)),
            ("bpe:cv", lambda: tfidf_lr(train, val, make=lambda n: tfidf(model_tokens(tok), n), cv=True)),
            ("bpe+emb:cv", lambda: served(train, val, vecs(embed, space), model_tokens(tok))),
        ]
    return runs


def report(task: str, runs: list[tuple[str, Callable]], y_val: np.ndarray) -> None:
    from sklearn.metrics import roc_auc_score

    peer = None
    for name, run in runs:
        t0 = time.perf_counter()
        p, chosen = run()
        peer = p if peer is None else peer
        f1, auc = macro_f1(y_val.astype(bool), p > 0.5), roc_auc_score(y_val, p)
        lo, hi = bootstrap_diff(y_val, p, peer)
        ci = f"{f1 - macro_f1(y_val.astype(bool), peer > 0.5):+.3f} [{lo:+.3f}, {hi:+.3f}]"
        shown = " ".join(f"{k}={v:.3g}" for k, v in chosen.items())
        print(
            f"{task:<10} {name:<14} {f1:>8.3f} {auc:>6.3f} {ci:>22} {time.perf_counter() - t0:>6.1f}  {shown}",
            flush=True,
        )


if __name__ == "__main__":
    main()
