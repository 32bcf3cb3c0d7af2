"""``roost train-retriever``: a retrieval head for the served model, trained on the corpus itself.

No labels: pairs are mined from the posts (a post and its reply; the words of a
post's hashtag and the post without it; two posts sharing a rare hashtag, both
without it) and a linear :class:`~roost.embeddings.EmbeddingHead` over the
model's mean-pooled hidden states is trained with InfoNCE (in-batch negatives,
symmetric). In-batch pairs whose anchors or positives are the same text (e.g.
two posts with the same hashtag) are masked out of the negatives, since they
are not negatives at all.

The language model stays frozen, so each distinct text is embedded once and the
head trains on cached features in seconds. The head has no bias, so it is
scale-invariant: training on the unit-normalized pooled states gives exactly the
output it will produce on the raw pooled states ``TextEmbedder`` feeds it.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F

from roost.corpus import schema
from roost.search.text import hashtag_words, word_counts
from roost.workspace import Workspace, atomic_write_json


@dataclass
class RetrieverConfig:
    steps: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    temperature: float = 0.05
    dim: int | None = None      # head output size; None: the model's width (identity init)
    max_pairs: int = 50_000
    rare_max_posts: int = 20    # a hashtag on at most this many posts counts as rare
    val_fraction: float = 0.05
    seed: int = 0


@dataclass
class Pairs:
    texts: list[str]            # distinct texts
    anchor: np.ndarray          # [P] index into texts
    positive: np.ndarray        # [P] index into texts
    kinds: dict[str, int]


def _strip_tag(text: str, tag: str) -> str:
    return " ".join(re.sub(rf"#{re.escape(tag)}\b", " ", text, flags=re.IGNORECASE).split())


def mine_pairs(ids: list[str], texts: list[str], reply_to: list[str | None], hashtags: list[list[str]],
               cfg: RetrieverConfig) -> Pairs:
    """Training pairs from posts (parallel lists, as in the corpus posts table)."""
    rng = random.Random(cfg.seed)
    by_id = {pid: i for i, pid in enumerate(ids)}
    raw: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for i, parent in enumerate(reply_to):
        if parent is not None and parent in by_id:
            raw["reply"].append((texts[by_id[parent]], texts[i]))
    counts = word_counts(texts)
    posts_of: dict[str, list[int]] = defaultdict(list)
    for i, tags in enumerate(hashtags):
        for tag in set(tags or []):
            posts_of[tag].append(i)
    for tag, posts in posts_of.items():
        words = " ".join(hashtag_words(tag, counts))
        for i in posts:
            raw["hashtag"].append((words, _strip_tag(texts[i], tag)))
        if 2 <= len(posts) <= cfg.rare_max_posts:
            for a, b in pairwise(posts):
                raw["rare_hashtag"].append((_strip_tag(texts[a], tag), _strip_tag(texts[b], tag)))
    pairs = [(a, p) for kind in sorted(raw) for a, p in raw[kind] if a.strip() and p.strip() and a != p]
    rng.shuffle(pairs)
    pairs = pairs[: cfg.max_pairs]
    vocab: dict[str, int] = {}
    anchor = np.array([vocab.setdefault(a, len(vocab)) for a, _ in pairs], dtype=np.int64)
    positive = np.array([vocab.setdefault(p, len(vocab)) for _, p in pairs], dtype=np.int64)
    return Pairs(list(vocab), anchor, positive, {k: len(v) for k, v in sorted(raw.items())})


def info_nce(a: torch.Tensor, p: torch.Tensor, a_idx: torch.Tensor, p_idx: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of unit vectors; same-text pairs off the diagonal are not negatives."""
    logits = a @ p.T / temperature
    same = (a_idx[:, None] == a_idx[None, :]) | (p_idx[:, None] == p_idx[None, :])
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(a))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@torch.no_grad()
def recall_at_1(head, feats: torch.Tensor, anchor: torch.Tensor, positive: torch.Tensor, batch: int = 256) -> float:
    """Share of anchors whose own positive is the nearest among a batch of candidates (duplicate texts excluded)."""
    hits = total = 0
    for s in range(0, len(anchor), batch):
        ai, pi = anchor[s:s + batch], positive[s:s + batch]
        a, p = F.normalize(head(feats[ai]), dim=-1), F.normalize(head(feats[pi]), dim=-1)
        sims = a @ p.T
        same = (pi[:, None] == pi[None, :]) | (ai[:, None] == ai[None, :])
        same.fill_diagonal_(False)
        hits += (sims.masked_fill(same, float("-inf")).argmax(1) == torch.arange(len(ai))).sum().item()
        total += len(ai)
    return hits / max(total, 1)


def train_head(feats: np.ndarray, pairs: Pairs, cfg: RetrieverConfig):
    """Train an EmbeddingHead on cached pooled features [len(pairs.texts), C]; returns (head, report)."""
    from tqdm import tqdm

    from roost.embeddings import EmbeddingHead

    torch.manual_seed(cfg.seed)
    x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    n_in = x.shape[1]
    head = EmbeddingHead(n_in, cfg.dim or n_in)
    with torch.no_grad():
        if head.proj.out_features == n_in:
            head.proj.weight.copy_(torch.eye(n_in))  # start from the plain pooled embedding
        else:
            torch.nn.init.orthogonal_(head.proj.weight)
    anchor, positive = torch.from_numpy(pairs.anchor), torch.from_numpy(pairs.positive)
    n_val = max(1, int(len(anchor) * cfg.val_fraction)) if len(anchor) > 20 else 0
    val = (anchor[:n_val], positive[:n_val])
    anchor, positive = anchor[n_val:], positive[n_val:]
    if len(anchor) < 2:
        raise ValueError(f"only {len(anchor)} training pairs could be mined from the corpus; it needs replies "
                         "or hashtags (at least 2 pairs)")
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    before = recall_at_1(head, x, *val) if n_val else None
    g = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for _ in tqdm(range(cfg.steps), desc="train-retriever", unit="step"):
        b = torch.randint(len(anchor), (min(cfg.batch_size, len(anchor)),), generator=g)
        ai, pi = anchor[b], positive[b]
        loss = info_nce(F.normalize(head(x[ai]), dim=-1), F.normalize(head(x[pi]), dim=-1), ai, pi, cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    head.eval()
    after = recall_at_1(head, x, *val) if n_val else None
    k = max(1, len(losses) // 10)
    report = {"pairs": int(len(anchor) + n_val), "kinds": pairs.kinds, "texts": len(pairs.texts),
              "first_loss": float(np.mean(losses[:k])), "last_loss": float(np.mean(losses[-k:])),
              "val_pairs": n_val, "val_recall@1_before": before, "val_recall@1_after": after}
    return head, report


def train_workspace_retriever(ws: Workspace, cfg: RetrieverConfig) -> dict:
    """Mine pairs from ``ws.corpus``, train on ``ws.model``'s features, save the head into ``ws.model``."""
    from roost.embeddings import HEAD_FILE, TextEmbedder
    from roost.export import load_hf
    from roost.tokenizer import load_tokenizer

    ws.require("corpus")
    if not (ws.model / "config.json").exists():
        raise FileNotFoundError(f"no served model in {ws.model}; run `roost train` and `roost export` first")
    t = schema.read_table(ws.corpus, "posts", columns=["id", "text", "reply_to", "hashtags"]).to_pydict()
    pairs = mine_pairs(t["id"], t["text"], t["reply_to"], t["hashtags"], cfg)
    if len(pairs.anchor) == 0:
        raise ValueError(f"{ws.corpus}: no training pairs (no replies and no hashtags in the posts)")
    # the plain pooled state (no head, even if one was trained before): the head is trained from scratch
    embedder = TextEmbedder(load_hf(ws.model), load_tokenizer(ws.model), batch_size=64)
    feats = embedder.embed(pairs.texts, show_progress=True)
    head, report = train_head(feats, pairs, cfg)
    path = head.save(ws.model / HEAD_FILE)
    report.update(path=str(path), config=asdict(cfg))
    atomic_write_json(ws.run_dir("retriever") / "report.json", report)
    return report
