"""nanoGPT's GPT-2 model and training step, written here from its description, as the peer for roost's training.

What nanoGPT (karpathy/nanoGPT, ``model.py`` and ``train.py``) trains: GPT-2
blocks (pre-LayerNorm, causal self-attention through one fused q/k/v
projection and ``F.scaled_dot_product_attention``, a 4x GELU MLP), learned
position embeddings, the token table tied to the lm_head, weights
Normal(0, 0.02) with the residual projections scaled by 1/sqrt(2 * layers);
the loss is ``F.cross_entropy`` over the logits; AdamW (betas 0.9 / 0.95,
weight decay 0.1 on the 2-D weights only, peak rate 6e-4) after clipping the
gradient norm to 1. ``bias=False`` is train.py's default (model.py's own
default is True, which only adds work). On a CPU nanoGPT's train.py runs fp32
(it autocasts only on CUDA) and uses the unfused AdamW; here the AdamW is fused,
the faster of the two, so the peer is not made slow on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

BETAS = (0.9, 0.95)
WEIGHT_DECAY = 0.1
PEAK_LR = 6e-4
GRAD_CLIP = 1.0


@dataclass
class NanoConfig:
    vocab_size: int = 8192
    block_size: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    bias: bool = False


class SelfAttention(nn.Module):
    def __init__(self, c: NanoConfig):
        super().__init__()
        self.n_head = c.n_head
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in self.c_attn(x).split(C, 2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, c: NanoConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = SelfAttention(c)
        self.ln_2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = nn.Sequential(
            nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias), nn.GELU(), nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    def __init__(self, c: NanoConfig):
        super().__init__()
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.h = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # tied
        for name, p in self.named_parameters():
            if p.ndim == 2:
                std = 0.02 / math.sqrt(2 * c.n_layer) if name.endswith("c_proj.weight") or ".mlp.2." in name else 0.02
                torch.nn.init.normal_(p, 0.0, std)
            elif "bias" in name:
                torch.nn.init.zeros_(p)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor, loss_reduction: str = "mean"):
        """The mean loss; with ``loss_reduction="none"``, ``(logits, per-token losses)`` as roost's ``GPT`` gives them.

        Targets of -100 count for nothing: roost's loader marks ignored targets so (``roost.loss.IGNORE_INDEX``),
        where nanoGPT's own data never has any (it passes -1).
        """
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = F.cross_entropy(
            logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction=loss_reduction
        )
        return loss if loss_reduction == "mean" else (logits, loss.view_as(targets))


def adamw(model: nn.Module) -> torch.optim.AdamW:
    """nanoGPT's ``configure_optimizers``: decay the 2-D weights, not the norms and biases; fused."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=PEAK_LR, betas=BETAS, fused=True)


def bare_step(model: NanoGPT, dtype: torch.dtype) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """nanoGPT's step without its loop: forward and loss (under bf16 autocast or not), backward, clip, AdamW."""
    opt = adamw(model)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        with autocast:
            loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step
