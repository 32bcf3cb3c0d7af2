"""Brand safety: logistic-regression probes on the model's embeddings flag unsafe context.

Each probe (e.g. "hate", "offensive") is trained from labelled examples in the
TweetEval format: a text file with one example per line and a label file with
one integer label per line. A context's unsafe score is the highest probability
any probe gives; no ad is served next to context scoring above the campaign's
``brand_safety_threshold``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from roost.workspace import atomic_write_json


def read_labelled(text_file: str | Path, label_file: str | Path) -> tuple[list[str], np.ndarray]:
    """One text per line and one integer label per line; errors name the file and line."""
    texts = Path(text_file).read_text(encoding="utf-8").splitlines()
    raw = Path(label_file).read_text(encoding="utf-8").splitlines()
    while raw and not raw[-1].strip():
        raw.pop()
    if len(texts) != len(raw):
        raise ValueError(f"{text_file} has {len(texts)} lines but {label_file} has {len(raw)}: "
                         "they must pair up line by line")
    labels = []
    for i, line in enumerate(raw, 1):
        try:
            labels.append(int(line.strip()))
        except ValueError:
            raise ValueError(f"{label_file}:{i}: label must be an integer, got {line!r}") from None
    return texts, np.array(labels, dtype=np.int64)


@dataclass
class SafetyProbes:
    space: str                                           # embedding space the probes were trained in
    names: list[str] = field(default_factory=list)
    weights: list[list[float]] = field(default_factory=list)
    biases: list[float] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)

    def scores(self, vecs: np.ndarray) -> np.ndarray:
        """Unsafe probability per row: the max over the probes."""
        z = np.atleast_2d(vecs) @ np.asarray(self.weights, dtype=np.float32).T + np.asarray(self.biases)
        return (1.0 / (1.0 + np.exp(-z))).max(axis=1)

    def add(self, name: str, vecs: np.ndarray, labels: np.ndarray, unsafe: set[int], c: float = 1.0) -> None:
        from sklearn.linear_model import LogisticRegression

        y = np.isin(labels, list(unsafe)).astype(np.int64)
        if not 0 < y.sum() < len(y):
            raise ValueError(f"probe {name!r}: need both safe and unsafe examples (unsafe labels {sorted(unsafe)}), "
                             f"have {int(y.sum())} unsafe of {len(y)}")
        fit = LogisticRegression(C=c, max_iter=2000).fit(vecs, y)
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
