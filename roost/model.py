"""The transformer: a decoder-only GPT whose weights map one to one onto Hugging Face Llama.

RMSNorm, rotary position embeddings (HF's rotate_half convention), grouped-query
attention through ``F.scaled_dot_product_attention``, a SwiGLU (or ReLU^2) MLP,
no biases, optional QK-norm, tied or untied embeddings. The module names mirror
``LlamaForCausalLM`` (``embed_tokens``, ``layers.{i}.self_attn.q_proj``, ...), so
export is a key prefix and nothing more (see roost/export.py). The Llama-only
defaults are what export needs; ``mlp="relu2"`` and ``qk_norm=True`` are allowed
for experiments but cannot be exported.

KV-cache protocol (the engine implements it): ``positions`` is a LongTensor
[B, T] of absolute positions used for RoPE (default ``arange(T)``). When a
``kv_cache`` is given, attention layer ``i`` calls
``k, v, attn_mask = kv_cache.update(i, k, v)`` with k, v shaped
[B, n_kv_head, T, head_dim] (after RoPE) and attends to the returned keys and
values with ``attn_mask`` [B, 1, T, S] (bool, True = attend) or None (attend to
everything returned). Without a cache, attention is causal over the T tokens.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from roost.errors import UserError
from roost.loss import IGNORE_INDEX, linear_cross_entropy

MLP_KINDS = ("swiglu", "relu2")


@dataclass
class GPTConfig:
    vocab_size: int = 8192
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: int = 12
    n_embd: int = 768
    intermediate_size: int = 2048
    max_seq_len: int = 1024
    mlp: str = "swiglu"
    qk_norm: bool = False
    tie_embeddings: bool = False
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "intermediate_size", "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UserError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise UserError(f"GPTConfig: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.n_head % self.n_kv_head:
            raise UserError(
                f"GPTConfig: n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head} "
                "(grouped-query attention shares each kv head among a whole number of query heads)"
            )
        if self.head_dim % 2:
            raise UserError(f"GPTConfig: head_dim={self.head_dim} (n_embd / n_head) must be even for RoPE")
        if self.mlp not in MLP_KINDS:
            raise UserError(f"GPTConfig.mlp must be one of {MLP_KINDS}, got {self.mlp!r}")
        if not self.rope_theta > 0:
            raise UserError(f"GPTConfig.rope_theta must be > 0, got {self.rope_theta!r}")
        if not 0 < self.norm_eps < 1:
            raise UserError(f"GPTConfig.norm_eps must be in (0, 1), got {self.norm_eps!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def from_depth(
        cls, depth: int, vocab_size: int = 8192, max_seq_len: int = 1024, *, n_kv_head: int | None = None, **overrides
    ) -> GPTConfig:
        """Every size from one dial, as in nanochat: width = depth * 64.

        Heads are 128 wide once the model is wide enough (>= 1024 and a multiple
        of 128), 64 wide below that. ``n_kv_head`` defaults to the number of
        heads (plain multi-head attention); pass a divisor of it for GQA. The
        SwiGLU hidden size is the multiple of 64 nearest 8/3 of the width (same
        parameter count as a 4x ReLU^2 MLP, which ``mlp="relu2"`` gets instead).
        """
        if isinstance(depth, bool) or not isinstance(depth, int) or depth <= 0:
            raise UserError(f"depth must be a positive integer, got {depth!r}")
        width = depth * 64
        head_dim = 128 if width >= 1024 and width % 128 == 0 else 64
        n_head = width // head_dim
        mlp = overrides.get("mlp", "swiglu")
        intermediate = 4 * width if mlp == "relu2" else max(64, round(8 * width / 3 / 64) * 64)
        kwargs = dict(
            vocab_size=vocab_size,
            n_layer=depth,
            n_head=n_head,
            n_kv_head=n_kv_head or n_head,
            n_embd=width,
            intermediate_size=intermediate,
            max_seq_len=max_seq_len,
        )
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def tiny(cls, vocab_size: int = 256, **overrides) -> GPTConfig:
        """A model for tests: 2 layers, width 64, 4 heads sharing 2 kv heads."""
        kwargs = dict(
            vocab_size=vocab_size, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, intermediate_size=128, max_seq_len=128
        )
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"GPTConfig: unknown field(s) {unknown}; known fields are {sorted(known)}")
        return cls(**d)

    def num_params(self, *, embeddings: bool = True) -> int:
        """Parameter count (tied embeddings counted once); ``embeddings=False`` leaves out the token table."""
        c, hd = self.n_embd, self.head_dim
        attn = c * self.n_head * hd * 2 + c * self.n_kv_head * hd * 2  # q, o + k, v
        mlp = (3 if self.mlp == "swiglu" else 2) * c * self.intermediate_size
        norms = 2 * c + (2 * hd if self.qk_norm else 0)
        n = self.n_layer * (attn + mlp + norms) + c  # + final norm
        n += 0 if self.tie_embeddings else self.vocab_size * c  # lm_head
        return n + (self.vocab_size * c if embeddings else 0)

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward), as in PaLM / nanochat.

        6 per matmul weight (the embedding lookup is not a matmul; an untied
        lm_head is) plus the attention scores and mixing, 12 * layers * heads *
        head_dim * seq_len.
        """
        t = seq_len or self.max_seq_len
        tied_head = self.vocab_size * self.n_embd if self.tie_embeddings else 0  # the tied table is a matmul too
        matmul_params = self.num_params(embeddings=False) + tied_head
        return 6 * matmul_params + 12 * self.n_layer * self.n_head * self.head_dim * t


def describe(config: GPTConfig) -> str:
    """One line a person can read: shape, parameters and training FLOPs per token."""
    c = config
    return (
        f"GPT: {c.n_layer} layers, width {c.n_embd}, {c.n_head} heads x {c.head_dim} "
        f"({c.n_kv_head} kv heads), {c.mlp} MLP {c.intermediate_size}, vocab {c.vocab_size}, "
        f"context {c.max_seq_len}{', tied embeddings' if c.tie_embeddings else ''}{', qk-norm' if c.qk_norm else ''}; "
        f"{c.num_params() / 1e6:.2f}M parameters ({c.num_params(embeddings=False) / 1e6:.2f}M without embeddings), "
        f"{c.flops_per_token() / 1e6:.1f} MFLOPs per token at seq_len {c.max_seq_len}"
    )


class KVCache(Protocol):
    """What ``GPT.forward(kv_cache=...)`` needs from a cache (the engine implements it)."""

    def update(
        self, layer_idx: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]: ...


def rope_tables(head_dim: int, max_seq_len: int, theta: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [max_seq_len, head_dim], computed exactly as HF Llama computes them."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim))
    freqs = torch.outer(torch.arange(max_seq_len, device=device).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def signed_sin(sin: torch.Tensor) -> torch.Tensor:
    """sin with its first half negated: ``rotate_half(x) * sin == x.roll(D // 2, -1) * signed_sin(sin)``."""
    half = sin.size(-1) // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, H, T, D] by cos and *signed* sin (``signed_sin``) [B, 1, T, D] or [T, D].

    HF's rotate_half convention (halves, not interleaved pairs), in three ops
    instead of seven: the sign of rotate_half lives in the table, a roll swaps
    the halves, and addcmul does the multiply-add.
    """
    if cos.dtype != x.dtype:  # under autocast q, k are bf16: keep them so
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.addcmul(x * cos, x.roll(x.size(-1) // 2, dims=-1), sin)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool):
    """SDPA with grouped-query attention.

    Without a mask, ``enable_gqa`` lets the flash kernel share kv heads without
    copying them. With a mask, the kv heads are expanded instead: the
    memory-efficient kernel accepts masks but not ``enable_gqa``, which would
    fall back to the slow math kernel.
    """
    groups = q.size(1) // k.size(1)
    if groups > 1 and attn_mask is not None:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, enable_gqa=groups > 1)


def fuse_linears(*linears: nn.Linear) -> torch.Tensor:
    """One column-major weight [sum of outs, in] whose row blocks *are* the linears' weights (views into it).

    For decode: one matmul instead of several, with the names, shapes and
    values of the separate weights unchanged (export and the optimizer's
    per-matrix groups see q, k, v and gate, up as before). Optimizer steps and
    ``load_state_dict`` write in place, so the fused weight stays current.
    """
    fused = torch.cat([m.weight.data for m in linears]).t().contiguous().t()
    for m, part in zip(linears, fused.split([m.out_features for m in linears])):
        m.weight.data = part
    return fused


def usable_fused(fused: torch.Tensor | None, first: nn.Linear) -> torch.Tensor | None:
    """``fused`` when autograd is off and it still shares memory with the weights, else None.

    With grad on, the separate weights are used so gradients reach them;
    ``.to()`` or a swapped parameter breaks the sharing, and the check sees it.
    """
    if fused is None or torch.is_grad_enabled() or fused.data_ptr() != first.weight.data_ptr():
        return None
    return fused


class Attention(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        c = config.n_embd
        self.q_proj = nn.Linear(c, self.n_head * self.head_dim, bias=False)
        self.k_proj = nn.Linear(c, self.n_kv_head * self.head_dim, bias=False)
        self.v_proj = nn.Linear(c, self.n_kv_head * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_head * self.head_dim, c, bias=False)
        if config.qk_norm:
            self.q_norm = nn.RMSNorm(self.head_dim, eps=config.norm_eps)
            self.k_norm = nn.RMSNorm(self.head_dim, eps=config.norm_eps)
        else:
            self.q_norm = self.k_norm = None
        self.qkv_weight: torch.Tensor | None = None  # set by GPT.decode_layout (see fuse_linears)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache: KVCache | None) -> torch.Tensor:
        B, T, _ = x.shape
        H, Hkv, D = self.n_head, self.n_kv_head, self.head_dim
        # F.linear on the weights rather than calling the nn.Linear modules: a decode step is ~30 tiny matmuls
        # and each Module.__call__ costs ~7 us (~5% of a depth-4 step); the modules stay for names and export.
        qkv_weight = usable_fused(self.qkv_weight, self.q_proj)
        if qkv_weight is not None and self.q_norm is None:  # decode: one matmul, one RoPE for q and k together
            qkv = F.linear(x, qkv_weight).view(B, T, H + 2 * Hkv, D).transpose(1, 2)
            qk = apply_rotary(qkv[:, : H + Hkv], cos, sin)
            q, k, v = qk[:, :H], qk[:, H:], qkv[:, H + Hkv :]
        else:
            q = F.linear(x, self.q_proj.weight).view(B, T, H, D).transpose(1, 2)
            k = F.linear(x, self.k_proj.weight).view(B, T, Hkv, D).transpose(1, 2)
            v = F.linear(x, self.v_proj.weight).view(B, T, Hkv, D).transpose(1, 2)
            if self.q_norm is not None:
                q, k = self.q_norm(q), self.k_norm(k)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if kv_cache is None:
            y = attend(q, k, v, None, is_causal=True)
        else:
            k, v, mask = kv_cache.update(self.layer_idx, k, v)
            y = attend(q, k, v, mask, is_causal=False)
        return F.linear(y.transpose(1, 2).reshape(B, T, -1), self.o_proj.weight)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        c, h = config.n_embd, config.intermediate_size
        self.kind = config.mlp
        self.gate_proj = nn.Linear(c, h, bias=False) if self.kind == "swiglu" else None
        self.up_proj = nn.Linear(c, h, bias=False)
        self.down_proj = nn.Linear(h, c, bias=False)
        self.gate_up_weight: torch.Tensor | None = None  # set by GPT.decode_layout (see fuse_linears)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # F.linear, not the modules: see Attention.forward
        if self.gate_proj is None:
            h = F.relu(F.linear(x, self.up_proj.weight)).square()
        elif (gate_up_weight := usable_fused(self.gate_up_weight, self.gate_proj)) is not None:
            gate, up = F.linear(x, gate_up_weight).chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.silu(F.linear(x, self.gate_proj.weight)) * F.linear(x, self.up_proj.weight)
        return F.linear(h, self.down_proj.weight)


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = nn.RMSNorm(config.n_embd, eps=config.norm_eps)
        self.self_attn = Attention(config, layer_idx)
        self.post_attention_layernorm = nn.RMSNorm(config.n_embd, eps=config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, kv_cache):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, kv_cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.n_embd)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.norm = nn.RMSNorm(config.n_embd, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.tie_weights()
        self.decode_ready = False  # see decode_layout
        # Non-persistent: checkpoints hold only weights; the tables are rebuilt from the config.
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", signed_sin(sin), persistent=False)  # sign of rotate_half folded in
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """GPT-2 style init, deterministic under ``torch.manual_seed``.

        Normal(0, 0.02) everywhere, residual projections (o_proj, down_proj)
        scaled by 1/sqrt(2 * n_layer) so the residual stream does not grow with
        depth, norms at one. Also re-ties embeddings and rebuilds the RoPE
        tables, so a model made on the meta device can be
        ``to_empty(device=...)``-ed and then initialised.
        """
        self.tie_weights()
        std = 0.02
        for name, p in self.named_parameters():
            if p.ndim == 1:
                p.fill_(1.0)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                p.normal_(0.0, std / math.sqrt(2 * self.config.n_layer))
            else:
                p.normal_(0.0, std)
        self.reset_rope_tables()

    def tie_weights(self) -> None:
        """Share the embedding table with the lm_head when the config ties them.

        Called again by ``init_weights`` because ``to_empty`` (meta-device
        construction) gives each module a fresh parameter and unties them.
        """
        if self.config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    @torch.no_grad()
    def reset_rope_tables(self) -> None:
        """Recompute the RoPE buffers in place (after ``to_empty``, which leaves them uninitialised)."""
        c = self.config
        cos, sin = rope_tables(c.head_dim, c.max_seq_len, c.rope_theta, device=self.rope_cos.device)
        self.rope_cos.copy_(cos)
        self.rope_sin.copy_(signed_sin(sin))

    @torch.no_grad()
    def decode_layout(self) -> GPT:
        """Lay the weights out for fast decoding; returns self. The first forward with a KV cache calls it.

        Why: a decode step multiplies one row by each weight matrix, which is
        bound by reading the weights and by per-op overhead. Every projection
        weight is stored column-major (MKL's matrix-vector product reads it
        ~1.7x faster than nn.Linear's row-major layout), and q/k/v and
        gate/up become views into one fused weight each (``fuse_linears``),
        used when autograd is off: 17 matmuls per depth-4 step instead of 29.
        Shapes, names, values and the state_dict (export, checkpoints, hashes)
        are unchanged; with autograd on, the model computes as before.
        """
        for block in self.layers:
            attn, mlp = block.self_attn, block.mlp
            if attn.qkv_weight is None:
                attn.qkv_weight = fuse_linears(attn.q_proj, attn.k_proj, attn.v_proj)
            if mlp.gate_proj is not None and mlp.gate_up_weight is None:
                mlp.gate_up_weight = fuse_linears(mlp.gate_proj, mlp.up_proj)
        for module in self.modules():
            if isinstance(module, nn.Linear) and module.weight.is_contiguous():
                module.weight.data = module.weight.data.t().contiguous().t()
        self.decode_ready = True
        return self

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # parameters() yields a tied tensor once

    def flops_per_token(self, seq_len: int | None = None) -> int:
        return self.config.flops_per_token(seq_len)

    def forward_hidden(
        self, idx: torch.Tensor, *, kv_cache: KVCache | None = None, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Final-normed hidden states [B, T, C] before the lm_head (embeddings pool these).

        Explicit ``positions`` must lie below ``max_seq_len``; they are not
        checked here, since that would cost a device sync on every decode step.
        A KV cache means decoding: the first such call applies ``decode_layout``
        (training never passes one, so its layout and rounding stay as built).
        """
        if kv_cache is not None and not self.decode_ready:
            with torch.inference_mode(False):  # normal tensors, so the model can still be trained afterwards
                self.decode_layout()
        B, T = idx.shape
        if positions is None:
            if T > self.config.max_seq_len:
                raise ValueError(f"sequence of {T} tokens is longer than max_seq_len={self.config.max_seq_len}")
            cos, sin = self.rope_cos[:T], self.rope_sin[:T]  # broadcast over batch and heads
        else:
            if positions.shape != idx.shape:
                raise ValueError(f"positions shape {tuple(positions.shape)} must match idx shape {tuple(idx.shape)}")
            cos, sin = self.rope_cos[positions].unsqueeze(1), self.rope_sin[positions].unsqueeze(1)
        x = self.embed_tokens(idx)
        for block in self.layers:
            x = block(x, cos, sin, kv_cache)
        return self.norm(x)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        kv_cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
        loss_reduction: str = "mean",
    ):
        """Logits [B, T, V]; with ``targets``, ``(logits, loss)``.

        The loss is cross-entropy in fp32 with ``ignore_index=-100`` (SFT masks
        prompt tokens that way); ``loss_reduction="none"`` gives per-token
        losses [B, T] (zero where ignored), for perplexity and evaluation.
        Training (autograd on, a summed or mean loss) takes the fused path of
        roost/loss.py, which returns no logits: then ``logits`` is None.
        """
        hidden = self.forward_hidden(idx, kv_cache=kv_cache, positions=positions)
        if targets is not None and loss_reduction != "none" and torch.is_grad_enabled():
            return None, linear_cross_entropy(hidden, self.lm_head.weight, targets, loss_reduction)
        logits = self.lm_head(hidden)
        if targets is None:
            return logits
        loss = F.cross_entropy(
            logits.float().view(-1, logits.size(-1)),
            targets.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction=loss_reduction,
        )
        return logits, loss.view(targets.shape) if loss_reduction == "none" else loss
