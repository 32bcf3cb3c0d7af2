"""Brand safety on TweetEval: model-based classifiers against TF-IDF + logistic regression, same run.

For each task (offensive, hate): train on ``train``, report macro-F1 and AUC on
``val``, and for every classifier the paired bootstrap interval (95%) of its
macro-F1 minus the peer's on ``val``. Classifiers:

- ``tfidf+lr`` (the peer): word 1-2-gram TF-IDF, logistic regression, C=4;
- ``tfidf+lr:cv``: the same with C chosen by cross-validation on train;
- ``probe:hashing``: roost's brand-safety probe (``SafetyProbes``, logistic
  regression) on the hashed bag-of-words embedding the server uses without a model;
- ``probe:model``: the same probe on the workspace model's embeddings (what
  ``roost serve`` uses when the workspace has a model), with ``--workspace``;
- ``hybrid:cv``: word TF-IDF next to the model's embeddings (scaled by a weight),
  one logistic regression; C (1, 4, 16) and the weight (1, 2) chosen by 3-fold cross-validation on train;
- ``bpe:cv``: TF-IDF over the model's own tokens (1-2-grams of BPE ids) + LR, C by
  cross-validation: the tokenizer's share of ``bpe+emb:cv``, without the embeddings;
- ``bpe+emb:cv``: ``hybrid:cv`` with TF-IDF over the model's own tokens instead of words.

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
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import sparse

Split = tuple[list[str], np.ndarray]
GRID_C = (1.0, 4.0, 16.0)
GRID_WEIGHT = (1.0, 2.0)


def load(root: Path, task: str, split: str) -> Split:
    from roost.labelled import read_labelled

    return read_labelled(root / task / f"{split}_text.txt", root / task / f"{split}_labels.txt")


def macro_f1(y: np.ndarray, yhat: np.ndarray) -> float:
    """Binary macro-F1 from counts (fast enough for thousands of bootstrap resamples)."""
    tp = float(np.sum(y & yhat))
    fp, fn = float(np.sum(~y & yhat)), float(np.sum(y & ~yhat))
    tn = len(y) - tp - fp - fn
    f_pos = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    f_neg = 2 * tn / (2 * tn + fn + fp) if tn + fn + fp else 0.0
    return (f_pos + f_neg) / 2


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


def fit_lr(x, y: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, y)


def choose_by_cv(features: Callable, grid: list[dict], y: np.ndarray, k: int = 3) -> tuple[dict, float]:
    """The grid point with the best mean k-fold macro-F1 on train. ``features(fit_rows, score_rows)`` returns a
    function of the parameters giving (x_fit, x_score); it is built once per fold, so vocabularies are learnt
    inside each fold and not again for every grid point."""
    from sklearn.model_selection import StratifiedKFold

    folds = list(StratifiedKFold(k, shuffle=True, random_state=0).split(np.zeros(len(y)), y))
    made = [(features(fit_rows, score_rows), fit_rows, score_rows) for fit_rows, score_rows in folds]
    best, best_f1 = grid[0], -1.0
    for params in grid:
        f1s = []
        for at, fit_rows, score_rows in made:
            x_fit, x_score = at(params)
            p = fit_lr(x_fit, y[fit_rows], params["C"]).predict_proba(x_score)[:, 1]
            f1s.append(macro_f1(y[score_rows].astype(bool), p > 0.5))
        if np.mean(f1s) > best_f1:
            best, best_f1 = params, float(np.mean(f1s))
    return best, best_f1


def word_tfidf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


def bpe_tfidf(tokenizer):
    """TF-IDF over the model's own BPE token ids (1-2-grams): the model's vocabulary, not words."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    def tokens(text: str) -> list[str]:
        ids = [str(i) for i in tokenizer.encode_batch([text])[0]]
        return ids + [f"{a}_{b}" for a, b in itertools.pairwise(ids)]

    return TfidfVectorizer(analyzer=tokens, min_df=2, sublinear_tf=True)


def tfidf_lr(train: Split, val: Split, make=word_tfidf, emb: tuple[np.ndarray, np.ndarray] | None = None, cv=False):
    """Validation probabilities and the chosen parameters of (TF-IDF [+ weighted embeddings]) + LR."""
    texts, y = train
    e_tr, e_val = emb if emb else (None, None)

    def features(fit_texts: list[str], other: list[str], e_fit=None, e_other=None) -> Callable:
        vec = make()
        x_fit, x_other = vec.fit_transform(fit_texts), vec.transform(other)
        if e_fit is None:
            return lambda params: (x_fit, x_other)
        return lambda params: (
            sparse.hstack([x_fit, sparse.csr_matrix(params["weight"] * e_fit)]).tocsr(),
            sparse.hstack([x_other, sparse.csr_matrix(params["weight"] * e_other)]).tocsr(),
        )

    def in_fold(fit_rows: np.ndarray, score_rows: np.ndarray) -> Callable:
        e = (e_tr[fit_rows], e_tr[score_rows]) if emb else (None, None)
        return features([texts[i] for i in fit_rows], [texts[i] for i in score_rows], *e)

    grid = [{"C": 4.0, "weight": 1.0}]
    if cv:
        grid = [{"C": c, "weight": w} for c in GRID_C for w in (GRID_WEIGHT if emb else (1.0,))]
    params, cv_f1 = choose_by_cv(in_fold, grid, y) if len(grid) > 1 else (grid[0], float("nan"))
    x_fit, x_val = features(texts, val[0], e_tr, e_val)(params)
    shown = {k: v for k, v in params.items() if emb or k != "weight"}
    return fit_lr(x_fit, y, params["C"]).predict_proba(x_val)[:, 1], {**shown, "cv_f1": cv_f1}


def probe(vecs: tuple[np.ndarray, np.ndarray], y: np.ndarray, space: str):
    from roost.ads.brand_safety import SafetyProbes

    probes = SafetyProbes(space=space)
    probes.add("x", vecs[0], y, {1}, balanced=True)
    return probes.scores(vecs[1]), {}


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
        ("probe:hashing", lambda: probe(vecs(hashing, hashing.space), train[1], hashing.space)),
    ]
    if model:
        embed, space, tok = model
        runs += [
            ("probe:model", lambda: probe(vecs(embed, space), train[1], space)),
            ("hybrid:cv", lambda: tfidf_lr(train, val, emb=vecs(embed, space), cv=True)),
            ("bpe:cv", lambda: tfidf_lr(train, val, make=lambda: bpe_tfidf(tok), cv=True)),
            ("bpe+emb:cv", lambda: tfidf_lr(train, val, make=lambda: bpe_tfidf(tok), emb=vecs(embed, space), cv=True)),
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
