"""``roost train-retriever``: the search retriever, trained on the corpus itself.

No labels: pairs are mined from the posts (a post and its reply; the words of a
post's hashtag and the post without it; two posts sharing a rare hashtag, both
without it). Two encoders are trained on them with InfoNCE (in-batch negatives;
pairs whose anchors or positives are the same text are masked out of the
negatives, since they are not negatives at all):

1. the post encoder, a :class:`~roost.search.embed.TokenBagEncoder` (the mean of a
   token table's rows, the table initialized from the language model's input
   embeddings), symmetric on both sides of each pair;
2. the query encoder, :class:`~roost.search.embed.QueryEncoder`: the language model
   itself, fine-tuned so its pooled states (through a map that starts at zero) move
   a query's bag vector toward its posts' fixed bag vectors.

Then search is tuned to them on posts held out of the mining
(:mod:`roost.search.tune`). Why this split of work between bag and transformer:
see :mod:`roost.search.embed`; the figures are in BENCHMARKS.md.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from roost.corpus import schema
from roost.errors import UserError
from roost.search.expand import ExpansionConfig
from roost.search.text import hashtag_words, word_counts
from roost.threads import check_mode, tuned_steps
from roost.workspace import Workspace, atomic_write_json

if TYPE_CHECKING:
    from roost.search.embed import QueryEncoder


@dataclass
class RetrieverConfig:
    steps: int = 1500
    batch_size: int = 256
    lr: float = 1e-2  # the table's rows move far from the LM's: 1e-3 barely changes them
    weight_decay: float = 0.0
    temperature: float = 0.3  # measured on the hashtag task: 0.05 -> 0.1 -> 0.3 raised NDCG@10, 0.5 no further
    dim: int | None = None  # vector size; None: the model's width, smaller: the table's top principal directions
    max_len: int = 128  # tokens of a text that count
    max_pairs: int = 100_000
    rare_max_posts: int = 20  # a hashtag on at most this many posts counts as rare
    query_steps: int = 100  # steps of the query encoder (the fine-tuned LM); 0: queries use the bag
    query_batch_size: int = 128
    query_lr: float = 3e-4  # the LM's weights
    query_proj_lr: float = 1e-3  # the map from its pooled states into the bag's space
    query_max_len: int = 16  # tokens of a query; pairs with longer anchors do not train the query encoder
    holdout_fraction: float = 0.1  # posts kept out of training to tune fusion, expansion and the threshold on
    tune_min_posts: int = 3  # a held-out hashtag on this many posts becomes a tuning query
    expansion: ExpansionConfig = field(default_factory=ExpansionConfig)
    val_fraction: float = 0.05
    seed: int = 0
    # the training loops' CPU threads, as `roost train --threads` (roost.threads): fixed or auto
    threads: str = "fixed"

    def __post_init__(self) -> None:
        check_mode(self.threads)


@dataclass
class Pairs:
    texts: list[str]  # distinct texts
    anchor: np.ndarray  # [P] index into texts
    positive: np.ndarray  # [P] index into texts
    kinds: dict[str, int]


def _strip_tag(text: str, tag: str) -> str:
    return " ".join(re.sub(rf"#{re.escape(tag)}\b", " ", text, flags=re.IGNORECASE).split())


def mine_pairs(
    ids: list[str], texts: list[str], reply_to: list[str | None], hashtags: list[list[str]], cfg: RetrieverConfig
) -> Pairs:
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


def info_nce(
    a: torch.Tensor, p: torch.Tensor, a_idx: torch.Tensor, p_idx: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of unit vectors; same-text pairs off the diagonal are not negatives."""
    logits = a @ p.T / temperature
    same = (a_idx[:, None] == a_idx[None, :]) | (p_idx[:, None] == p_idx[None, :])
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(a))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@torch.no_grad()
def recall_at_1(
    encoder,
    ids: list[list[int]],
    anchor: torch.Tensor,
    positive: torch.Tensor,
    batch: int = 256,
    docs: torch.Tensor | None = None,
) -> float:
    """Share of anchors whose own positive is the nearest among a batch of candidates (duplicate texts excluded).

    ``docs`` (the positives' vectors, unnormalized, indexed like ``ids``) stands in for encoding the positives."""
    hits = total = 0
    for s in range(0, len(anchor), batch):
        ai, pi = anchor[s : s + batch], positive[s : s + batch]
        p = F.normalize(docs[pi], dim=-1) if docs is not None else encoder([ids[i] for i in pi.tolist()])
        sims = encoder([ids[i] for i in ai.tolist()]) @ p.T
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
        raise UserError(f"dim={dim} must be between 1 and the model's width {table.shape[1]}")
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
        raise UserError(
            f"only {len(anchor)} training pairs could be mined from the corpus; it needs replies "
            "or hashtags (at least 2 pairs)"
        )
    opt = torch.optim.AdamW(encoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    before = recall_at_1(encoder, ids, *val) if n_val else None
    g = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for _ in tuned_steps(tqdm(range(cfg.steps), desc="train-retriever", unit="step"), cfg.threads == "auto"):
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
    report = {
        "pairs": int(len(anchor) + n_val),
        "kinds": pairs.kinds,
        "texts": len(pairs.texts),
        "first_loss": float(np.mean(losses[:k])),
        "last_loss": float(np.mean(losses[-k:])),
        "val_pairs": n_val,
        "val_recall@1_before": before,
        "val_recall@1_after": after,
    }
    return encoder, report


def train_query_encoder(query: QueryEncoder, ids: list[list[int]], pairs: Pairs, cfg: RetrieverConfig) -> dict:
    """Fine-tune the LM (and its map) of ``query`` so queries find their posts' bag vectors; the bag stays fixed."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    query.bag.requires_grad_(False)
    with torch.no_grad():
        docs = query.bag.raw(ids)  # every text's post vector, fixed from here on
    # queries are short: train on the pairs whose anchor is query-sized (a hashtag's words, a short post);
    # a batch of long anchors would cost a post-length forward each and teach what queries never look like
    short = np.array([len(ids[a]) < cfg.query_max_len for a in pairs.anchor], dtype=bool)
    anchor, positive = torch.from_numpy(pairs.anchor[short]), torch.from_numpy(pairs.positive[short])
    n_val = max(1, int(len(anchor) * cfg.val_fraction)) if len(anchor) > 20 else 0
    (va, vp), (anchor, positive) = (anchor[:n_val], positive[:n_val]), (anchor[n_val:], positive[n_val:])
    if len(anchor) < 2:
        raise UserError(f"only {len(anchor)} query-sized training pairs (anchors under {cfg.query_max_len} tokens)")

    @torch.no_grad()
    def val_recall() -> float | None:
        if not n_val:
            return None
        query.eval()
        return recall_at_1(query, ids, va, vp, docs=docs)

    before = val_recall()
    query.train()
    body = [p for n, p in query.model.named_parameters() if p.requires_grad and not n.startswith("lm_head")]
    opt = torch.optim.AdamW(
        [{"params": body, "lr": cfg.query_lr}, {"params": query.proj.parameters(), "lr": cfg.query_proj_lr}],
        weight_decay=0.0,
    )
    g = torch.Generator().manual_seed(cfg.seed + 1)
    losses = []
    steps = tqdm(range(cfg.query_steps), desc="train-retriever queries", unit="step")
    for _ in tuned_steps(steps, cfg.threads == "auto"):
        b = torch.randint(len(anchor), (min(cfg.query_batch_size, len(anchor)),), generator=g)
        ai, pi = anchor[b], positive[b]
        loss = info_nce(query([ids[i] for i in ai.tolist()]), F.normalize(docs[pi], dim=-1), ai, pi, cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    query.eval()
    k = max(1, len(losses) // 10)
    return {
        "pairs": int(len(anchor) + n_val),
        "first_loss": float(np.mean(losses[:k])) if losses else None,
        "last_loss": float(np.mean(losses[-k:])) if losses else None,
        "val_recall@1_before": before,
        "val_recall@1_after": val_recall(),
    }


def model_token_table(model_dir: Path) -> torch.Tensor:
    """The served model's input-embedding table [vocab, C], read from its safetensors without building the model."""
    from safetensors import safe_open

    path = model_dir / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        names = f.keys()  # a safe_open handle is not a dict: it has no `in`
        key = next((k for k in names if k.endswith("embed_tokens.weight")), None)
        if key is None:
            raise UserError(f"{path}: no input-embedding table (*embed_tokens.weight) to start the retriever from")
        return f.get_tensor(key).float()


def train_workspace_retriever(ws: Workspace, cfg: RetrieverConfig) -> dict:
    """Train on ``ws.corpus`` less a held-out share, tune search on that share, save into ``ws.model``.

    Steps: mine pairs from the training posts; train the post encoder (token bag); train the query
    encoder (the LM, fine-tuned); predict tags for expansion; tune fusion, expansion weight and the
    no-match threshold on the held-out posts (:mod:`roost.search.tune`)."""
    from roost.export import load_hf
    from roost.search.embed import RETRIEVER_FILE, QueryEncoder, Retriever, save_retriever
    from roost.search.engine import SearchModel
    from roost.search.expand import TagExpander, tag_vocabulary
    from roost.search.tune import MIN_QUERIES, TUNED, holdout, semantic_quality, tune_ranking
    from roost.search.unseen import UnseenConfig, unseen_task
    from roost.tokenizer import load_tokenizer

    ws.require("corpus")
    if not (ws.model / "config.json").exists():
        raise FileNotFoundError(f"no served model in {ws.model}; run `roost train` and `roost export` first")
    t = schema.read_table(ws.corpus, "posts", columns=["id", "text", "reply_to", "hashtags"]).to_pydict()
    held = holdout(t["text"], cfg.holdout_fraction, cfg.seed)
    train = {k: [v for v, h in zip(col, held) if not h] for k, col in t.items()}
    pairs = mine_pairs(train["id"], train["text"], train["reply_to"], train["hashtags"], cfg)
    if len(pairs.anchor) == 0:
        raise UserError(f"{ws.corpus}: no training pairs (no replies and no hashtags in the posts)")
    tokenizer = load_tokenizer(ws.model)
    ids = tokenizer.encode_batch(pairs.texts)
    bag, report = train_retriever(model_token_table(ws.model), ids, pairs, cfg)
    query = None
    if cfg.query_steps > 0:
        query = QueryEncoder(bag, load_hf(ws.model).train(), tokenizer.bos_id, tokenizer.pad_id, cfg.query_max_len)
        report["query"] = train_query_encoder(query, ids, pairs, cfg)
    held_texts = [x for x, h in zip(t["text"], held) if h]
    counts = word_counts(train["text"])
    task = unseen_task(held_texts, UnseenConfig(min_posts=cfg.tune_min_posts), counts)
    kept = unseen_task(held_texts, UnseenConfig(min_posts=cfg.tune_min_posts), counts, keep_tags=True)
    retriever = Retriever(tokenizer, bag, query)
    if query is not None and len(task.queries) >= MIN_QUERIES:  # keep the transformer for queries only if it helps
        q = semantic_quality(
            {"query_encoder": SearchModel(retriever, retriever.queries), "bag": SearchModel(retriever)}, task
        )
        report["query"]["held_out_semantic"] = q
        if sum(q["bag"].values()) > sum(q["query_encoder"].values()):
            query = retriever.query_encoder = None
    report["query_encoder_used"] = query is not None
    tags, words = tag_vocabulary(train["hashtags"], counts, cfg.expansion)
    expander = TagExpander.build(tags, words, retriever.queries, cfg.expansion)
    model = SearchModel(retriever, retriever.queries, expand=expander)
    calibration = held_texts or train["text"][: cfg.batch_size]
    ranking, report["tuning"] = tune_ranking(model, task, calibration[:5000], kept)
    settings = {
        "ranking": {k: getattr(ranking, k) for k in TUNED},
        "expansion": {"tags": tags, "words": words, "config": asdict(cfg.expansion)},
    }
    path = save_retriever(ws.model / RETRIEVER_FILE, bag, query, settings, expander.vectors)
    report.update(path=str(path), config=asdict(cfg), expansion_tags=len(tags), held_out_posts=int(held.sum()))
    atomic_write_json(ws.run_dir("retriever") / "report.json", report)
    return report
