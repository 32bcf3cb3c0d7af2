"""The embedding function search uses: the trained retriever if there is one, else the served model.

The retriever (``roost train-retriever``, saved as ``workspace/model/retriever.safetensors``)
is a bag of tokens: a text's vector is the mean of its tokens' rows in a table that
starts as the language model's own input-embedding table and is fine-tuned with
InfoNCE on pairs mined from the corpus. Why not the model's contextual states: on
the TweetEval hashtag task (BENCHMARKS.md, "Search") the mean-pooled hidden states
of a small LM score a fifth of BM25, the untrained input-token table already twice
that, and the fine-tuned table beats BM25 on its own, since every token's row gets
its own gradient where a head over pooled states only gets one linear map. It is
also the cheapest encoder there is: no transformer forward, so posts embed at
tokenizer speed and a query in well under a millisecond.
"""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from roost.search.engine import EmbedFn
from roost.workspace import atomic_write_bytes

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

    def forward(self, ids: list[list[int]]) -> torch.Tensor:
        ids = [x[: self.max_len] for x in ids]
        flat = torch.tensor([t for x in ids for t in x], dtype=torch.long)
        offsets = torch.tensor([0, *accumulate(map(len, ids))][:-1], dtype=torch.long)
        return F.normalize(self.bag(flat, offsets), dim=-1)  # an empty text is the zero vector

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save

        state = {"table": self.bag.weight.detach().contiguous().cpu()}
        return atomic_write_bytes(path, save(state, metadata={"format": "pt", "max_len": str(self.max_len)}))

    @classmethod
    def load(cls, path: str | Path) -> TokenBagEncoder:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            keys, meta = set(f.keys()), f.metadata() or {}
            if keys != {"table"}:
                raise ValueError(f"{path}: not a retriever (expected one tensor 'table' [vocab, dim]; found {sorted(keys)})")
            table = f.get_tensor("table")
        return cls(table, int(meta.get("max_len", 128))).eval()


class Retriever:
    """An :data:`EmbedFn`: texts -> float32 [N, dim] unit vectors, via the model's tokenizer and a token bag."""

    def __init__(self, tokenizer, encoder: TokenBagEncoder, batch_size: int = 4096):
        self.tokenizer, self.encoder, self.batch_size = tokenizer, encoder.eval(), batch_size

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> Retriever:
        from roost.tokenizer import load_tokenizer

        model_dir = Path(model_dir)
        encoder = TokenBagEncoder.load(model_dir / RETRIEVER_FILE)
        tokenizer = load_tokenizer(model_dir)
        if tokenizer.vocab_size > encoder.bag.num_embeddings:
            raise ValueError(f"{model_dir / RETRIEVER_FILE} has {encoder.bag.num_embeddings} token rows but the "
                             f"tokenizer has {tokenizer.vocab_size} tokens; run `roost train-retriever` again")
        return cls(tokenizer, encoder)

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(texts), self.batch_size):
                ids = self.tokenizer.encode_batch(list(texts[s : s + self.batch_size]))
                out[s : s + len(ids)] = self.encoder(ids).numpy()
        return out


def load_embedder(model_dir: str | Path) -> EmbedFn:
    """``texts -> unit vectors`` from ``workspace/model``: its trained retriever, else the model's pooled states."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"no served model in {model_dir} (config.json missing); "
                                "run `roost train` and `roost export` first, or build with --no-vectors")
    if (model_dir / RETRIEVER_FILE).is_file():
        return Retriever.from_dir(model_dir)
    from roost.embeddings import TextEmbedder

    return TextEmbedder.from_dir(model_dir).embed
