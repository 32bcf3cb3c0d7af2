"""The encoders search uses: the trained retriever if there is one, else the served model.

The retriever (``roost train-retriever``, saved in ``workspace/model/retriever.safetensors``)
is asymmetric, as posts and queries are:

* **posts** are embedded by a bag of tokens: the mean of the tokens' rows in a table
  that starts as the language model's input-embedding table and is fine-tuned with
  InfoNCE on pairs mined from the corpus. No transformer forward, so posts embed at
  tokenizer speed (an index of a million posts builds on a CPU) and a new post is
  searchable at once.
* **queries** are short, so they can afford the transformer: a query's vector is its
  token bag plus a learned map of the fine-tuned language model's mean-pooled hidden
  states. The map starts at zero, so training starts from the bag and the transformer
  adds what context gives (word order, phrases, words the bag saw rarely).

Why not the transformer on posts too: on 2 CPU cores it embeds ~180 tweets/s against
~20,000 for the bag, and fine-tuning it as a symmetric bi-encoder ran 9 s a step;
figures in BENCHMARKS.md, "Search".
"""

from __future__ import annotations

import json
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from roost.embeddings import mean_pool, pad_rows
from roost.errors import UserError
from roost.model import GPT
from roost.search.engine import SearchModel
from roost.search.ranking import RankingConfig
from roost.workspace import atomic_write_bytes

if TYPE_CHECKING:
    from roost.embeddings import TextEmbedder

RETRIEVER_FILE = "retriever.safetensors"


class TokenBagEncoder(nn.Module):
    """Token ids -> unit vectors: the mean of the tokens' rows in ``table`` (first ``max_len`` tokens)."""

    def __init__(self, table: torch.Tensor, max_len: int = 128):
        super().__init__()
        if table.ndim != 2:
            raise ValueError(f"the token table must be [vocab, dim], got shape {tuple(table.shape)}")
        self.bag = nn.EmbeddingBag.from_pretrained(table.detach().float().clone(), freeze=False, mode="mean")
        self.max_len = max_len

    @property
    def dim(self) -> int:
        return self.bag.embedding_dim

    def raw(self, ids: list[list[int]]) -> torch.Tensor:
        """The mean of the tokens' rows, not normalized [B, dim]."""
        ids = [x[: self.max_len] for x in ids]
        device = self.bag.weight.device
        flat = torch.tensor([t for x in ids for t in x], dtype=torch.long, device=device)
        offsets = torch.tensor([0, *accumulate(map(len, ids))][:-1], dtype=torch.long, device=device)
        return self.bag(flat, offsets)

    def forward(self, ids: list[list[int]]) -> torch.Tensor:
        return F.normalize(self.raw(ids), dim=-1)  # an empty text is the zero vector


class QueryEncoder(nn.Module):
    """Token ids -> unit vectors: the token bag plus a learned map of the LM's mean-pooled hidden states."""

    def __init__(self, bag: TokenBagEncoder, model: GPT, bos_id: int, pad_id: int, max_len: int = 32):
        super().__init__()
        self.bag, self.model, self.bos_id, self.pad_id, self.max_len = bag, model, bos_id, pad_id, max_len
        self.proj = nn.Linear(model.config.n_embd, bag.dim, bias=False)
        nn.init.zeros_(self.proj.weight)  # start as the bag alone

    def forward(self, ids: list[list[int]]) -> torch.Tensor:
        ids = [x[: self.max_len - 1] for x in ids]
        idx, mask = pad_rows([[self.bos_id, *x] for x in ids], self.pad_id)  # pooled as TextEmbedder pools
        device = self.proj.weight.device
        idx, mask = idx.to(device), mask.to(device)
        pooled = mean_pool(self.model.forward_hidden(idx), mask)
        return F.normalize(self.bag.raw(ids) + self.proj(pooled), dim=-1)


class Retriever:
    """Posts by the token bag, queries by :class:`QueryEncoder`; both give float32 [N, dim] unit vectors."""

    def __init__(
        self, tokenizer, encoder: TokenBagEncoder, query_encoder: QueryEncoder | None = None, batch_size: int = 4096
    ):
        self.tokenizer, self.encoder, self.batch_size = tokenizer, encoder.eval(), batch_size
        self.query_encoder = query_encoder.eval() if query_encoder is not None else None

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Post vectors."""
        return self._encode(self.encoder, texts, self.batch_size)

    def queries(self, texts: list[str]) -> np.ndarray:
        """Query vectors (the post encoder when no query encoder was trained)."""
        if self.query_encoder is None:
            return self(texts)
        return self._encode(self.query_encoder, texts, 64)

    def _encode(self, encoder: nn.Module, texts: list[str], batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                ids = self.tokenizer.encode_batch(list(texts[s : s + batch_size]))
                out[s : s + len(ids)] = encoder(ids).float().cpu().numpy()
        return out


def save_retriever(
    path: str | Path,
    bag: TokenBagEncoder,
    query: QueryEncoder | None,
    settings: dict,
    expansion: np.ndarray | None = None,
) -> Path:
    """One safetensors file: the bag's table, the query encoder's weights (``query.*``), the expansion tags'
    vectors, and in its metadata the query encoder's model config and ``settings`` (the ranking, the
    expansion's tags and config, tuned for this retriever)."""
    from safetensors.torch import save

    state = {"table": bag.bag.weight.detach().contiguous().cpu()}
    if expansion is not None:
        state["expansion"] = torch.from_numpy(np.ascontiguousarray(expansion, dtype=np.float32))
    meta = {"format": "pt", "max_len": str(bag.max_len), "settings": json.dumps(settings)}
    if query is not None:
        state.update(
            {
                f"query.{k}": v.detach().contiguous().cpu()
                for k, v in query.state_dict().items()
                if not k.startswith(("bag.", "model.lm_head")) and "rope" not in k
            }
        )
        meta.update(query_config=json.dumps(query.model.config.to_dict()), query_max_len=str(query.max_len))
    return atomic_write_bytes(path, save(state, metadata=meta))


def load_retriever(path: str | Path, tokenizer) -> tuple[TokenBagEncoder, QueryEncoder | None, dict]:
    """(post encoder, query encoder or None, settings) from :func:`save_retriever`'s file; the expansion
    vectors, if any, are ``settings["expansion_vectors"]``."""
    from safetensors import SafetensorError, safe_open

    from roost.model import GPTConfig

    try:
        with safe_open(str(path), framework="pt") as f:
            keys, meta = set(f.keys()), f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in keys}
    except SafetensorError as e:
        raise UserError(f"{path}: not a readable safetensors file ({e}); run `roost train-retriever` again") from None
    if "table" not in keys or any(k not in ("table", "expansion") and not k.startswith("query.") for k in keys):
        raise UserError(
            f"{path}: not a retriever (expected a tensor 'table' [vocab, dim] and 'query.*' "
            f"weights; found {sorted(keys)[:5]})"
        )
    bag = TokenBagEncoder(tensors.pop("table"), int(meta.get("max_len", 128))).eval()
    settings = json.loads(meta.get("settings", "{}"))
    if "expansion" in tensors:
        settings["expansion_vectors"] = tensors.pop("expansion").numpy()
    query = None
    if "query_config" in meta:
        with torch.device("meta"):
            model = GPT(GPTConfig.from_dict(json.loads(meta["query_config"])))
        model.to_empty(device="cpu")
        model.tie_weights()
        model.reset_rope_tables()
        query = QueryEncoder(bag, model, tokenizer.bos_id, tokenizer.pad_id, int(meta["query_max_len"]))
        state = {k.removeprefix("query."): v for k, v in tensors.items()}
        missing, unexpected = query.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(("bag.", "model.lm_head")) and "rope" not in k]
        if missing or unexpected:
            raise UserError(
                f"{path}: query encoder weights do not match its config: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
        query.eval()
    return bag, query, settings


def load_search_model(
    model_dir: str | Path, *, rerank: bool = False, served: TextEmbedder | None = None, device: str = "cpu"
) -> SearchModel:
    """What search uses from ``workspace/model``: its trained retriever (post and query encoders, tuned
    ranking, tag expansion), else the model's pooled hidden states with the default ranking; with ``rerank``,
    also the language model's query-likelihood re-ranker (:mod:`roost.search.rerank`). ``served``: that model
    already loaded (the server's), used rather than reading the folder again. ``device``: where the encoders
    run (``roost index`` embeds on the GPU when there is one)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(
            f"no served model in {model_dir} (config.json missing); "
            "run `roost train` and `roost export` first, or build with --no-vectors"
        )
    has_retriever = (model_dir / RETRIEVER_FILE).is_file()
    if served is None and (rerank or not has_retriever):
        from roost.embeddings import TextEmbedder

        served = TextEmbedder.from_dir(model_dir, device=device)
    model = _load_retriever_model(model_dir, device) if has_retriever else SearchModel(served.embed)
    if rerank:
        from roost.search.rerank import QueryLikelihood

        model.rerank = QueryLikelihood(served.model, served.tokenizer)
    return model


def _load_retriever_model(model_dir: Path, device: str = "cpu") -> SearchModel:
    from roost.search.expand import ExpansionConfig, TagExpander
    from roost.tokenizer import load_tokenizer

    path = model_dir / RETRIEVER_FILE
    tokenizer = load_tokenizer(model_dir)
    bag, query, settings = load_retriever(path, tokenizer)
    if tokenizer.vocab_size > bag.bag.num_embeddings:
        raise UserError(
            f"{path} has {bag.bag.num_embeddings} token rows but the tokenizer has "
            f"{tokenizer.vocab_size} tokens; run `roost train-retriever` again"
        )
    retriever = Retriever(tokenizer, bag.to(device), query.to(device) if query is not None else None)
    ranking = RankingConfig(**settings.get("ranking", {}))
    expand = None
    if "expansion_vectors" in settings:
        e = settings["expansion"]
        expand = TagExpander(e["tags"], e["words"], settings["expansion_vectors"], ExpansionConfig(**e["config"]))
    return SearchModel(retriever, retriever.queries, ranking, expand)
