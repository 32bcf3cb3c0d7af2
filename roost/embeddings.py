"""Text embeddings from the language model: mean-pooled final hidden states, L2-normalized.

``/v1/embeddings``, ads (context/creative matching, the brand-safety probe) and
the evaluation probes embed text this way. Search's retriever
(``roost.search.embed``) is a separate encoder trained for retrieval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from roost.model import GPT


class TextEmbedder:
    """Embeds texts with a GPT: ``embed(texts) -> float32 [N, dim]``, each row of unit length.

    Each text is encoded as a training document is (``<|bos|>`` then its tokens,
    cut to ``max_len``) and its hidden states are averaged over the text's own
    tokens. BOS is left out of the average because its state is the same for
    every text (position 0, causal attention); an empty text keeps just BOS.
    Texts are sorted by length and batched with right padding: under causal
    attention a real token never sees the pads after it, so a text's vector does
    not depend on what it was batched with.
    """

    def __init__(self, model: GPT, tokenizer, *, max_len: int = 128, batch_size: int = 32):
        if not 2 <= max_len <= model.config.max_seq_len:
            raise ValueError(
                f"max_len={max_len} must be between 2 and the model's max_seq_len={model.config.max_seq_len}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_len, self.batch_size = max_len, batch_size
        self.device = next(model.parameters()).device

    @property
    def dim(self) -> int:
        return self.model.config.n_embd

    @classmethod
    def from_dir(cls, model_dir: str | Path, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, **kwargs) -> TextEmbedder:
        """The served model folder (HF format + tokenizer)."""
        from roost.export import load_hf
        from roost.tokenizer import load_tokenizer

        model_dir = Path(model_dir)
        model = load_hf(model_dir, device=device, dtype=dtype)
        return cls(model, load_tokenizer(model_dir), **kwargs)

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        bos = self.tokenizer.bos_id
        return [[bos, *ids[: self.max_len - 1]] for ids in self.tokenizer.encode_batch(texts)]

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("TextEmbedder.embed takes a list of strings")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self._token_ids(list(texts))
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        starts = range(0, len(order), self.batch_size)
        if show_progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="embedding", unit="batch")
        with torch.inference_mode():
            for start in starts:
                rows = order[start : start + self.batch_size]
                out[rows] = self._embed_batch([ids[i] for i in rows]).cpu().numpy()
        return out

    def _embed_batch(self, batch: list[list[int]]) -> torch.Tensor:
        T = max(map(len, batch))
        idx = torch.full((len(batch), T), self.tokenizer.pad_id, dtype=torch.long)
        pool = torch.zeros(len(batch), T, 1)
        for row, ids in enumerate(batch):
            idx[row, : len(ids)] = torch.tensor(ids)
            pool[row, 1 if len(ids) > 1 else 0 : len(ids)] = 1.0
        hidden = self.model.forward_hidden(idx.to(self.device)).float()
        pool = pool.to(self.device)
        pooled = (hidden * pool).sum(1) / pool.sum(1)
        return F.normalize(pooled, dim=-1)
