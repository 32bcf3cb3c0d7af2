"""Brand safety: logistic-regression probes on the model's embeddings flag unsafe context.

By default the one probe, ``moderation``, learns from the network's own
signals: the posts ingest saw removed, withheld or marked sensitive
(``corpus/moderation.jsonl``) against the posts nobody acted on
(:func:`workspace_examples`), so a workspace needs no labelled files. Those
labels are noisy (platforms miss some unsafe posts and flag some safe ones),
and the probe is weighted for its rare positives so it does not learn to say
"safe" always. Probes can also be trained from labelled files in the TweetEval
format (a text file with one example per line and a label file with one integer
label per line). A context's unsafe score is the highest probability any probe
gives; no ad is served next to context scoring above the campaign's
``brand_safety_threshold``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from roost.errors import UserError
from roost.workspace import atomic_write_json


@dataclass
class SafetyProbes:
    space: str  # embedding space the probes were trained in
    names: list[str] = field(default_factory=list)
    weights: list[list[float]] = field(default_factory=list)
    biases: list[float] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)  # what it was trained from (e.g. the corpus's hash), to redo it

    def scores(self, vecs: np.ndarray) -> np.ndarray:
        """Unsafe probability per row: the max over the probes."""
        z = np.atleast_2d(vecs) @ np.asarray(self.weights, dtype=np.float32).T + np.asarray(self.biases)
        return (1.0 / (1.0 + np.exp(-z))).max(axis=1)

    def add(
        self, name: str, vecs: np.ndarray, labels: np.ndarray, unsafe: set[int], c: float = 1.0, balanced: bool = False
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        y = np.isin(labels, list(unsafe)).astype(np.int64)
        if not 0 < y.sum() < len(y):
            raise UserError(
                f"probe {name!r}: need both safe and unsafe examples (unsafe labels {sorted(unsafe)}), "
                f"have {int(y.sum())} unsafe of {len(y)}"
            )
        fit = LogisticRegression(C=c, max_iter=2000, class_weight="balanced" if balanced else None).fit(vecs, y)
        self.names.append(name)
        self.weights.append([float(w) for w in fit.coef_[0]])
        self.biases.append(float(fit.intercept_[0]))

    def evaluate(self, name: str, vecs: np.ndarray, labels: np.ndarray, unsafe: set[int]) -> dict:
        """AUC and macro-F1 (at 0.5) of one probe on held-out examples."""
        from sklearn.metrics import f1_score, roc_auc_score

        i = self.names.index(name)
        p = 1.0 / (1.0 + np.exp(-(vecs @ np.asarray(self.weights[i]) + self.biases[i])))
        y = np.isin(labels, list(unsafe)).astype(np.int64)
        m = {"auc": float(roc_auc_score(y, p)), "macro_f1": float(f1_score(y, p > 0.5, average="macro")), "n": len(y)}
        self.metrics[name] = m
        return m

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> SafetyProbes:
        return cls(**json.loads(Path(path).read_text()))


def workspace_examples(
    corpus_dir: str | Path, negatives_per_positive: int = 20, max_negatives: int = 50_000, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    """Texts and 0/1 labels from the corpus: every post the platform acted on, and a sample of the rest.

    Raises ValueError, saying what to do, when the corpus has no moderation signals.
    """
    from roost.corpus.schema import MODERATION_LOG, read_table

    log = Path(corpus_dir) / MODERATION_LOG
    flagged = set()
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            if line.strip():
                flagged.add(json.loads(line)["id"])
    posts = read_table(corpus_dir, "posts", ["id", "text"])
    ids, texts = posts.column("id").to_pylist(), posts.column("text").to_pylist()
    pos = [t for i, t in zip(ids, texts) if i in flagged]
    if not pos:
        raise UserError(
            f"no moderation signals in {corpus_dir}: none of its posts was removed, withheld or marked "
            "sensitive (API v2 withheld/possibly_sensitive, or a 'moderation' column in CSV/Parquet); "
            "train from labelled files instead: --train NAME TEXTS LABELS"
        )
    rest = [t for i, t in zip(ids, texts) if i not in flagged]
    rng = np.random.default_rng(seed)
    n = min(len(rest), max_negatives, negatives_per_positive * len(pos))
    neg = [rest[k] for k in sorted(rng.choice(len(rest), size=n, replace=False))]
    return pos + neg, np.array([1] * len(pos) + [0] * len(neg), dtype=np.int64)


def train_from_signals(
    corpus_dir: str | Path, embed, space: str, limit: int | None = None, held_out: float = 0.2, seed: int = 0
) -> SafetyProbes:
    """The ``moderation`` probe from the corpus's own signals, with AUC and macro-F1 on a held-out share.

    The held-out figures are against the platform's signals, which are noisy:
    the probe's real quality is measured against ground truth elsewhere (the
    sample's truth, TweetEval in BENCHMARKS.md).
    """
    from roost.ads.retrieval import embed_in_batches

    texts, labels = workspace_examples(corpus_dir, seed=seed)
    order = np.random.default_rng(seed).permutation(len(texts))[:limit]
    cut = max(1, int(len(order) * (1 - held_out)))
    vecs = embed_in_batches(embed, [texts[i] for i in order], desc="embedding moderated posts")
    probes = SafetyProbes(space=space)
    probes.add("moderation", vecs[:cut], labels[order[:cut]], {1}, balanced=True)
    if len(set(labels[order[cut:]].tolist())) == 2:
        probes.evaluate("moderation", vecs[cut:], labels[order[cut:]], {1})
        probes.metrics["moderation"].update(flagged=int(labels.sum()), examples=len(texts))
    return probes
