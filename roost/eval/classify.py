"""Text classification three ways, on the same training examples of a task:

- ``tfidf``: TF-IDF word uni/bigrams + logistic regression (scikit-learn), the baseline;
- ``probe``: logistic regression on the served model's text embeddings (frozen model);
- ``finetune``: the model plus a linear head on its mean-pooled hidden states, all trained
  for a few hundred steps with AdamW.

Scores are accuracy and macro-F1 on the task's validation split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from roost.embeddings import mean_pool, pad_rows
from roost.errors import UserError

Split = tuple[list[str], np.ndarray]


@dataclass
class ClassifyConfig:
    max_train: int = 5000  # training examples per task (the first N of the train split)
    max_val: int | None = None
    finetune_steps: int = 200  # 0 skips the fine-tune
    batch_size: int = 16
    body_lr: float = 3e-4
    head_lr: float = 3e-3
    weight_decay: float = 0.01
    max_len: int = 64  # tokens per text, <|bos|> included
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_train", "batch_size", "max_len"):
            if getattr(self, name) < 1 or (name == "max_len" and self.max_len < 2):
                raise UserError(f"ClassifyConfig.{name} must be positive, got {getattr(self, name)}")
        if self.finetune_steps < 0:
            raise UserError(f"finetune steps must be >= 0, got {self.finetune_steps}")


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def tfidf_baseline(train: Split, val: Split) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    clf = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True), LogisticRegression(max_iter=2000)
    )
    clf.fit(*train)
    return scores(val[1], clf.predict(val[0]))


def embedding_probe(embed, train: Split, val: Split) -> dict[str, float]:
    """Logistic regression on ``embed(texts)`` (the frozen model's unit-length text vectors)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(embed(train[0]), train[1])
    return scores(val[1], clf.predict(embed(val[0])))


class SequenceClassifier(nn.Module):
    """A GPT body and a linear head over its hidden states averaged across the text's tokens."""

    def __init__(self, body: nn.Module, n_classes: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.config.n_embd, n_classes)

    def forward(self, idx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(mean_pool(self.body.forward_hidden(idx), mask))


def encode(tokenizer, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``<|bos|>`` + tokens, right-padded, and the mask to pool over, as :class:`roost.embeddings.TextEmbedder` does."""
    return pad_rows(
        [[tokenizer.bos_id, *ids[: max_len - 1]] for ids in tokenizer.encode_batch(texts)], tokenizer.pad_id
    )


def finetune(
    model_dir: str | Path, train: Split, val: Split, n_classes: int, cfg: ClassifyConfig, desc: str = "finetune"
) -> dict[str, float]:
    """Train the served model plus a head on ``train`` for ``cfg.finetune_steps`` steps; score on ``val``."""
    from tqdm import tqdm

    from roost.export import load_hf
    from roost.tokenizer import load_tokenizer

    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(model_dir)
    model = SequenceClassifier(load_hf(model_dir), n_classes)
    max_len = min(cfg.max_len, model.body.config.max_seq_len)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.body.parameters(), "lr": cfg.body_lr},
            {"params": model.head.parameters(), "lr": cfg.head_lr},
        ],
        weight_decay=cfg.weight_decay,
    )
    texts, labels = train
    rng = random.Random(cfg.seed)
    order: list[int] = []
    model.train()
    for step in tqdm(range(cfg.finetune_steps), desc=desc, unit="step", leave=False):
        if len(order) < cfg.batch_size:  # reshuffled epochs
            order += rng.sample(range(len(texts)), len(texts))
        rows, order = order[: cfg.batch_size], order[cfg.batch_size :]
        idx, mask = encode(tokenizer, [texts[i] for i in rows], max_len)
        frac = step / max(cfg.finetune_steps, 1)  # linear decay to zero
        for group, base in zip(optimizer.param_groups, (cfg.body_lr, cfg.head_lr)):
            group["lr"] = base * (1 - frac)
        loss = F.cross_entropy(model(idx, mask), torch.as_tensor(labels[rows]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    preds = []
    with torch.inference_mode():
        for start in range(0, len(val[0]), 64):
            idx, mask = encode(tokenizer, val[0][start : start + 64], max_len)
            preds.append(model(idx, mask).argmax(-1).numpy())
    return scores(val[1], np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64))
