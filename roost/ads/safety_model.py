"""One brand-safety classifier: TF-IDF over the model's own tokens next to the model's embedding, one LR.

Measured on TweetEval (bench/safety.py, BENCHMARKS.md), a probe on the
embeddings alone is 0.06-0.10 macro-F1 below word TF-IDF + logistic
regression; TF-IDF over the model tokenizer's ids (1-2-grams) plus the
embedding, scaled by a weight, in one logistic regression is not worse. The
regularisation C and the embedding weight are chosen by stratified k-fold
macro-F1 on the training examples only. Without a model (the hashing
embedder) the tokens are the hashing embedder's own words and their bigrams.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

GRID_C = (1.0, 4.0, 16.0)
GRID_WEIGHT = (1.0, 2.0)
Tokenize = Callable[[str], list[str]]


def macro_f1(y: np.ndarray, yhat: np.ndarray) -> float:
    """Binary macro-F1 from counts (fast enough for thousands of bootstrap resamples)."""
    tp = float(np.sum(y & yhat))
    fp, fn = float(np.sum(~y & yhat)), float(np.sum(y & ~yhat))
    tn = len(y) - tp - fp - fn
    f_pos = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    f_neg = 2 * tn / (2 * tn + fn + fp) if tn + fn + fp else 0.0
    return (f_pos + f_neg) / 2


def fit_lr(x, y: np.ndarray, c: float):
    """Class-balanced LR: the unsafe class is rare, and unweighted LR learns to say "safe" always."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, y)


def choose_by_cv(features: Callable, grid: list[dict], y: np.ndarray, k: int = 3) -> tuple[dict, float]:
    """The grid point with the best mean k-fold macro-F1 on train. ``features(fit_rows, score_rows)`` returns a
    function of the parameters giving (x_fit, x_score); it is built once per fold, so vocabularies are learnt
    inside each fold and not again for every grid point. Too few examples for k folds: the first grid point."""
    from sklearn.model_selection import StratifiedKFold

    k = min(k, int(np.bincount(y, minlength=2).min()))
    if len(grid) == 1 or k < 2:
        return grid[0], float("nan")
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


def model_tokens(tokenizer) -> Tokenize:
    """The model tokenizer's ids of a text and their bigrams, as strings: the model's vocabulary, not words."""

    def tokens(text: str) -> list[str]:
        ids = [str(i) for i in tokenizer.encode_batch([text])[0]]
        return ids + [f"{a}_{b}" for a, b in itertools.pairwise(ids)]

    return tokens


def word_tokens(text: str) -> list[str]:
    """The hashing embedder's words and their bigrams: "will kill" and "should stab" say what "kill" alone does
    not (with bigrams the sample network's safe posts above 0.5 fell from 0.13% to 0.04%, BENCHMARKS.md)."""
    from roost.ads.catalog import words

    ws = words(text)
    return ws + [f"{a}_{b}" for a, b in itertools.pairwise(ws)]


def tokens_for(embed) -> tuple[str, Tokenize]:
    """("model", its tokens) when ``embed`` is a loaded model's ``embed``, else ("words", words and bigrams)."""
    tokenizer = getattr(getattr(embed, "__self__", None), "tokenizer", None)
    if tokenizer is not None:
        return "model", model_tokens(tokenizer)
    return "words", word_tokens


def tfidf(tokenize: Tokenize, n_texts: int):
    """Sublinear TF-IDF; tokens seen in one text only are dropped once there are enough texts to see them twice."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer=tokenize, min_df=2 if n_texts >= 100 else 1, sublinear_tf=True)


def stack(x_tokens, vecs: np.ndarray | None, weight: float):
    """Token features next to the weighted embedding, one sparse row per text."""
    if vecs is None:
        return x_tokens
    return sparse.hstack([x_tokens, sparse.csr_matrix(weight * np.asarray(vecs, dtype=np.float64))]).tocsr()


def cv_fit(texts: list[str], y: np.ndarray, make: Callable, vecs: np.ndarray | None = None, cv: bool = True):
    """(fitted TF-IDF, fitted LR, chosen params with the CV macro-F1) for TF-IDF (``make(n_texts)``) [+ weighted
    ``vecs``] + LR; C and the embedding weight chosen by k-fold CV on these examples only."""

    def in_fold(fit_rows: np.ndarray, score_rows: np.ndarray) -> Callable:
        vec = make(len(fit_rows))
        x_fit = vec.fit_transform([texts[i] for i in fit_rows])
        x_score = vec.transform([texts[i] for i in score_rows])
        e_fit, e_score = (vecs[fit_rows], vecs[score_rows]) if vecs is not None else (None, None)
        return lambda p: (stack(x_fit, e_fit, p["weight"]), stack(x_score, e_score, p["weight"]))

    grid = [{"C": 4.0, "weight": 1.0}]
    if cv:
        grid = [{"C": c, "weight": w} for c in GRID_C for w in (GRID_WEIGHT if vecs is not None else (1.0,))]
    params, cv_f1 = choose_by_cv(in_fold, grid, y)
    vec = make(len(texts))
    lr = fit_lr(stack(vec.fit_transform(texts), vecs, params["weight"]), y, params["C"])
    return vec, lr, {**params, "cv_f1": cv_f1}


@dataclass
class TokenProbe:
    """A fitted classifier, as saved: the TF-IDF vocabulary and idf, the LR weights over [tokens | embedding]."""

    vocab: list[str]
    idf: list[float]
    token_weights: list[float]
    emb_weights: list[float]
    emb_weight: float  # the scale the embedding was multiplied by before the LR
    bias: float
    chosen: dict

    @classmethod
    def fit(cls, texts: list[str], vecs: np.ndarray, y: np.ndarray, tokenize: Tokenize) -> TokenProbe:
        vec, lr, chosen = cv_fit(texts, y, lambda n: tfidf(tokenize, n), vecs)
        vocab = [""] * len(vec.vocabulary_)
        for token, i in vec.vocabulary_.items():
            vocab[i] = token
        coef = lr.coef_[0]
        return cls(
            vocab=vocab,
            idf=[float(v) for v in vec.idf_],
            token_weights=[float(w) for w in coef[: len(vocab)]],
            emb_weights=[float(w) for w in coef[len(vocab) :]],
            emb_weight=float(chosen["weight"]),
            bias=float(lr.intercept_[0]),
            chosen={k: float(v) for k, v in chosen.items() if v == v},  # NaN (no CV) is not JSON
        )

    def scorer(self, tokenize: Tokenize) -> Callable[[list[str], np.ndarray], np.ndarray]:
        """A function of (texts, their embeddings) giving the unsafe probability per text.

        It computes what scikit-learn's ``TfidfVectorizer.transform`` (sublinear tf, l2 norm) and the LR give,
        with one dict lookup per token: the vectorizer's input checks cost 3-4 ms a call, most of an ad
        decision's time when every decision scores its context (BENCHMARKS.md, Ads).
        """
        weighted = {t: (idf, idf * w) for t, idf, w in zip(self.vocab, self.idf, self.token_weights)}
        w_emb = np.asarray(self.emb_weights) * self.emb_weight

        def score(texts: list[str], vecs: np.ndarray) -> np.ndarray:
            z = np.atleast_2d(vecs) @ w_emb + self.bias
            for k, text in enumerate(texts):
                counts: dict[str, int] = {}
                for token in tokenize(text):
                    if token in weighted:
                        counts[token] = counts.get(token, 0) + 1
                norm = dot = 0.0
                for token, n in counts.items():
                    tf = 1.0 + math.log(n)
                    idf, idf_w = weighted[token]
                    norm += (tf * idf) ** 2
                    dot += tf * idf_w
                if norm:
                    z[k] += dot / math.sqrt(norm)
            return 1.0 / (1.0 + np.exp(-z))

        return score
