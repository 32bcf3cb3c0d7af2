"""Re-ranking by the language model: query likelihood.

The classic model-based re-ranker (Ponte and Croft's query likelihood, here with the
network's own language model in place of a unigram model) scores a candidate post by
how likely the model finds the query's words after reading the post: the mean log
probability of the query's tokens following ``<|bos|> post``. It needs no training
beyond the language model's own. It costs one transformer forward per candidate, so
it is off by default (``RankingConfig.rerank_top = 0``): BENCHMARKS.md ("Search") has
what it gives and what it costs on a CPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from roost.model import GPT


class QueryLikelihood:
    """``(query, post texts) -> scores``: mean log p(query tokens | post) under the language model."""

    def __init__(self, model: GPT, tokenizer, max_post_tokens: int = 48, max_query_tokens: int = 16):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_post_tokens, self.max_query_tokens = max_post_tokens, max_query_tokens

    def __call__(self, query: str, posts: list[str]) -> np.ndarray:
        q = self.tokenizer.encode(" " + query.strip())[: self.max_query_tokens] if query.strip() else []
        if not posts or not q:
            return np.zeros(len(posts), dtype=np.float32)
        bos, pad = self.tokenizer.bos_id, self.tokenizer.pad_id
        rows = [[bos, *p[: self.max_post_tokens]] for p in self.tokenizer.encode_batch(list(posts))]
        T = max(map(len, rows)) + len(q)
        idx = torch.full((len(rows), T), pad, dtype=torch.long)
        for i, r in enumerate(rows):  # right-padded: under causal attention the pads after the query change nothing
            idx[i, : len(r) + len(q)] = torch.tensor([*r, *q])
        with torch.inference_mode():
            logp = F.log_softmax(self.model(idx).float(), dim=-1)
        scores = np.empty(len(rows), dtype=np.float32)
        for i, r in enumerate(rows):
            at = torch.arange(len(r) - 1, len(r) - 1 + len(q))  # the positions that predict the query's tokens
            scores[i] = logp[i, at, torch.tensor(q)].mean().item()
        return scores
