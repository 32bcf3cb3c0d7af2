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


def pad_rows(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``<|bos|>``-led token rows, right-padded to one tensor [B, T], and the mask [B, T] of the tokens to average.

    The mask covers each text's own tokens: not BOS, whose state is the same
    for every text (position 0, causal attention), except for an empty text,
    which has only BOS. Under causal attention the pads after a text change
    nothing before them, so a text's vector does not depend on its batch.
    """
    T = max(map(len, rows), default=1)
    idx = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), T)
    for i, ids in enumerate(rows):
        idx[i, : len(ids)] = torch.tensor(ids)
        mask[i, 1 if len(ids) > 1 else 0 : len(ids)] = 1.0
    return idx, mask


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The average of ``hidden`` [B, T, C] over the positions ``mask`` [B, T] marks: [B, C]."""
    return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)


class TextEmbedder:
    """Embeds texts with a GPT: ``embed(texts) -> float32 [N, dim]``, each row of unit length.

    Each text is encoded as a training document is (``<|bos|>`` then its tokens,
    cut to ``max_len``) and its hidden states are averaged over the text's own
    tokens (:func:`pad_rows`, :func:`mean_pool`). Texts are sorted by length and
    batched with right padding, which never changes a text's vector.
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
    def from_dir(
        cls, model_dir: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, **kwargs
    ) -> TextEmbedder:
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
        idx, mask = pad_rows(batch, self.tokenizer.pad_id)
        hidden = self.model.forward_hidden(idx.to(self.device)).float()
        return F.normalize(mean_pool(hidden, mask.to(self.device)), dim=-1)
