"""Per-request sampling: penalties, temperature, top-k, top-p, a seeded generator, logprobs.

Each sequence owns a ``torch.Generator``, so a seed gives the same text whatever
else shares the decode step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0  # 0: greedy
    top_k: int = 0  # 0: no top-k cut
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: int | None = None  # None: no logprobs; k >= 0: the chosen token's plus the top k
    n: int = 1
    ignore_eos: bool = False  # keep going past end-of-text tokens (benchmarks: a fixed length)

    def validate(self) -> None:
        """Raise ValueError naming the parameter that is out of range."""
        checks = [
            ("max_tokens", self.max_tokens >= 1, "must be >= 1"),
            ("temperature", 0 <= self.temperature <= 2, "must be in [0, 2]"),
            ("top_k", self.top_k >= 0, "must be >= 0"),
            ("top_p", 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("presence_penalty", -2 <= self.presence_penalty <= 2, "must be in [-2, 2]"),
            ("frequency_penalty", -2 <= self.frequency_penalty <= 2, "must be in [-2, 2]"),
            ("logprobs", self.logprobs is None or 0 <= self.logprobs <= 20, "must be in [0, 20]"),
            ("n", self.n >= 1, "must be >= 1"),
            ("seed", self.seed is None or -(2**63) <= self.seed < 2**63, "must be a 64-bit integer"),
            ("stop", all(isinstance(s, str) and s for s in self.stop), "must be non-empty strings"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise ParamError(name, f"{name} {why}, got {getattr(self, name)!r}")


class ParamError(ValueError):
    """A sampling parameter out of range; ``param`` names it."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


@dataclass
class TokenLogprob:
    token_id: int
    logprob: float
    top: list[tuple[int, float]]  # (token id, logprob), best first


class Sampler:
    """Picks a sequence's next tokens; keeps the counts the penalties need."""

    def __init__(self, params: SamplingParams, vocab_size: int, seed: int | None, banned: Sequence[int] = ()):
        """``banned``: token ids never chosen, whatever the logits (ingest's placeholders, which stand
        for scrubbed text and must never appear in output); logprobs are those of the distribution without them."""
        self.params = params
        self.banned = torch.tensor(sorted(banned), dtype=torch.long)
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed % 2**64)
        self.counts = torch.zeros(vocab_size) if (params.presence_penalty or params.frequency_penalty) else None

    def __call__(self, logits: torch.Tensor) -> tuple[int, TokenLogprob | None]:
        """Choose a token from one row of float logits [V]."""
        p = self.params
        lp = None
        if len(self.banned):
            logits = logits.index_fill(0, self.banned, float("-inf"))
        if p.logprobs is not None:
            logprobs = torch.log_softmax(logits, dim=-1)
        x = logits
        if self.counts is not None:
            x = x - p.frequency_penalty * self.counts - p.presence_penalty * (self.counts > 0).float()
        if p.temperature == 0:
            token = int(torch.argmax(x))
        else:
            x = x / p.temperature
            if 0 < p.top_k < x.shape[-1]:
                kth = torch.topk(x, p.top_k).values[-1]
                x = x.masked_fill(x < kth, float("-inf"))
            if p.top_p < 1:
                sorted_x, order = torch.sort(x, descending=True)
                cum = torch.softmax(sorted_x, dim=-1).cumsum(-1)
                drop = cum - torch.softmax(sorted_x, dim=-1) >= p.top_p  # keep the smallest set reaching top_p
                x = x.scatter(0, order, sorted_x.masked_fill(drop, float("-inf")))
            token = int(torch.multinomial(torch.softmax(x, dim=-1), 1, generator=self.generator))
        if self.counts is not None:
            self.counts[token] += 1
        if p.logprobs is not None:
            top = torch.topk(logprobs, p.logprobs) if p.logprobs else None
            lp = TokenLogprob(
                token,
                float(logprobs[token]),
                list(zip(top.indices.tolist(), top.values.tolist())) if top is not None else [],
            )
        return token, lp
