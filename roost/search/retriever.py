"""``roost train-retriever``: the search retriever, trained on the corpus itself.

No labels: pairs are mined from the posts (a post and its reply; the words of a
post's hashtag and the post without it; two posts sharing a rare hashtag, both
without it) and a :class:`~roost.search.embed.TokenBagEncoder` (the mean of a
token table's rows, the table initialized from the language model's input
embeddings) is trained on them with InfoNCE (in-batch negatives, symmetric).
In-batch pairs whose anchors or positives are the same text (e.g. two posts with
the same hashtag) are masked out of the negatives, since they are not negatives
at all. Why a token bag and not a head over the model's pooled hidden states:
see :mod:`roost.search.embed`; the figures are in BENCHMARKS.md.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from roost.corpus import schema
from roost.search.text import hashtag_words, word_counts
from roost.workspace import Workspace, atomic_write_json


@dataclass
class RetrieverConfig:
    steps: int = 1500
    batch_size: int = 256
    lr: float = 1e-2            # the table's rows move far from the LM's: 1e-3 barely changes them
    weight_decay: float = 0.0
    temperature: float = 0.3     # measured on the hashtag task: 0.05 -> 0.1 -> 0.3 raised NDCG@10, 0.5 no further
    dim: int | None = None      # vector size; None: the model's width, smaller: the table's top principal directions
    max_len: int = 128          # tokens of a text that count
    max_pairs: int = 100_000
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
def recall_at_1(encoder, ids: list[list[int]], anchor: torch.Tensor, positive: torch.Tensor, batch: int = 256) -> float:
    """Share of anchors whose own positive is the nearest among a batch of candidates (duplicate texts excluded)."""
    hits = total = 0
    for s in range(0, len(anchor), batch):
        ai, pi = anchor[s:s + batch], positive[s:s + batch]
        sims = encoder([ids[i] for i in ai.tolist()]) @ encoder([ids[i] for i in pi.tolist()]).T
        same = (pi[:, None] == pi[None, :]) | (ai[:, None] == ai[None, :])
        same.fill_diagonal_(False)
        hits += (sims.masked_fill(same, float("-inf")).argmax(1) == torch.arange(len(ai))).sum().item()
        total += len(ai)
    return hits / max(total, 1)


def initial_table(table: torch.Tensor, dim: int | None) -> torch.Tensor:
    """The LM's input-embedding table, or its projection onto its ``dim`` top principal directions."""
    if dim is None or dim == table.shape[1]:
        return table
    if not 1 <= dim <= table.shape[1]:
        raise ValueError(f"dim={dim} must be between 1 and the model's width {table.shape[1]}")
    _, _, v = torch.linalg.svd(table.float() - table.float().mean(0), full_matrices=False)
    return table.float() @ v[:dim].T


def train_retriever(table: torch.Tensor, ids: list[list[int]], pairs: Pairs, cfg: RetrieverConfig):
    """Train a TokenBagEncoder from ``table`` [vocab, C] on pairs of texts (``ids``: token ids per pairs.texts);
    returns (encoder, report)."""
    from tqdm import tqdm

    from roost.search.embed import TokenBagEncoder

    torch.manual_seed(cfg.seed)
    encoder = TokenBagEncoder(initial_table(table, cfg.dim), cfg.max_len)
    anchor, positive = torch.from_numpy(pairs.anchor), torch.from_numpy(pairs.positive)
    n_val = max(1, int(len(anchor) * cfg.val_fraction)) if len(anchor) > 20 else 0
    val = (anchor[:n_val], positive[:n_val])
    anchor, positive = anchor[n_val:], positive[n_val:]
    if len(anchor) < 2:
        raise ValueError(f"only {len(anchor)} training pairs could be mined from the corpus; it needs replies "
                         "or hashtags (at least 2 pairs)")
    opt = torch.optim.AdamW(encoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    before = recall_at_1(encoder, ids, *val) if n_val else None
    g = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for _ in tqdm(range(cfg.steps), desc="train-retriever", unit="step"):
        b = torch.randint(len(anchor), (min(cfg.batch_size, len(anchor)),), generator=g)
        ai, pi = anchor[b], positive[b]
        a, p = encoder([ids[i] for i in ai.tolist()]), encoder([ids[i] for i in pi.tolist()])
        loss = info_nce(a, p, ai, pi, cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    encoder.eval()
    after = recall_at_1(encoder, ids, *val) if n_val else None
    k = max(1, len(losses) // 10)
    report = {"pairs": int(len(anchor) + n_val), "kinds": pairs.kinds, "texts": len(pairs.texts),
              "first_loss": float(np.mean(losses[:k])), "last_loss": float(np.mean(losses[-k:])),
              "val_pairs": n_val, "val_recall@1_before": before, "val_recall@1_after": after}
    return encoder, report


def model_token_table(model_dir: Path) -> torch.Tensor:
    """The served model's input-embedding table [vocab, C], read from its safetensors without building the model."""
    from safetensors import safe_open

    path = model_dir / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        names = f.keys()  # a safe_open handle is not a dict: it has no `in`
        key = next((k for k in names if k.endswith("embed_tokens.weight")), None)
        if key is None:
            raise ValueError(f"{path}: no input-embedding table (*embed_tokens.weight) to start the retriever from")
        return f.get_tensor(key).float()


def train_workspace_retriever(ws: Workspace, cfg: RetrieverConfig) -> dict:
    """Mine pairs from ``ws.corpus``, train from ``ws.model``'s token table, save the retriever into ``ws.model``."""
    from roost.search.embed import RETRIEVER_FILE
    from roost.tokenizer import load_tokenizer

    ws.require("corpus")
    if not (ws.model / "config.json").exists():
        raise FileNotFoundError(f"no served model in {ws.model}; run `roost train` and `roost export` first")
    t = schema.read_table(ws.corpus, "posts", columns=["id", "text", "reply_to", "hashtags"]).to_pydict()
    pairs = mine_pairs(t["id"], t["text"], t["reply_to"], t["hashtags"], cfg)
    if len(pairs.anchor) == 0:
        raise ValueError(f"{ws.corpus}: no training pairs (no replies and no hashtags in the posts)")
    ids = load_tokenizer(ws.model).encode_batch(pairs.texts)
    encoder, report = train_retriever(model_token_table(ws.model), ids, pairs, cfg)
    path = encoder.save(ws.model / RETRIEVER_FILE)
    report.update(path=str(path), config=asdict(cfg))
    atomic_write_json(ws.run_dir("retriever") / "report.json", report)
    return report
