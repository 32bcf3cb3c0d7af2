"""Muon with its Newton-Schulz orthogonalisation batched over same-shaped matrices, in a dtype the device runs fast.

Why not ``torch.optim.Muon`` as it is: it orthogonalises one matrix at a time,
always in bf16. On a CPU without native bf16 (AVX2 only, no AVX512-BF16 or AMX)
bf16 matmuls are emulated, and its Newton-Schulz iterations took ~20 s a step
at depth 4 against under 1 s for the model's forward and backward
(BENCHMARKS.md, "Training"). Here the iterations run in ``ns_dtype`` (roost
passes bf16 where the hardware has it, as before, and fp32 elsewhere), and the
matrices of one shape (a depth-4 model has 28 matrices in 3 shapes) go through
one batched iteration: 3 x 15 batched matmuls a step instead of 28 x 15 small
ones. The update is torch's otherwise: Nesterov momentum, the quintic
iteration with the same coefficients, decoupled weight decay and the same
``adjust_lr_fn`` scaling. The class *is* a ``torch.optim.Muon`` (same param
groups, state and ``state_dict``), so checkpoints move between the two.
Parameters sharded by FSDP2 (DTensors) keep torch's own per-matrix step.
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor
from torch.optim._muon import _adjust_lr


def orthogonalize(
    g: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float, dtype: torch.dtype
) -> torch.Tensor:
    """The quintic Newton-Schulz iteration of ``torch.optim.Muon`` on a stack of matrices [n, rows, cols].

    Each matrix is scaled to Frobenius norm <= 1, so its spectral norm is too;
    the iteration then drives its singular values towards 1 (to about
    0.7-1.2: Keller Jordan's coefficients trade exactness for speed). Wide
    orientation (rows <= cols), so the Gram matrices are the small side.
    """
    a, b, c = coefficients
    x = g.to(dtype)
    tall = g.size(-2) > g.size(-1)
    if tall:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


class Muon(torch.optim.Muon):
    """``torch.optim.Muon`` whose orthogonalisation runs batched by shape and in ``ns_dtype`` (module docstring)."""

    def __init__(self, params, *, ns_dtype: torch.dtype = torch.bfloat16, **kwargs):
        super().__init__(params, **kwargs)
        self.ns_dtype = ns_dtype
        self.sharded = any(isinstance(p, DTensor) for g in self.param_groups for p in g["params"])

    @torch.no_grad()
    def step(self, closure=None):
        if self.sharded:  # stacking and batched matmuls of shards would gather them: torch's step as it is
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[torch.Tensor] = []
            grads: list[torch.Tensor] = []
            bufs: list[torch.Tensor] = []
            self._init_group(group, params, grads, bufs)
            if not params:
                continue
            lr, momentum, weight_decay = float(group["lr"]), group["momentum"], group["weight_decay"]
            torch._foreach_lerp_(bufs, grads, 1 - momentum)
            updates = torch._foreach_lerp(grads, bufs, momentum) if group["nesterov"] else bufs
            if weight_decay:
                torch._foreach_mul_(params, 1 - lr * weight_decay)
            by_shape: dict[torch.Size, list[int]] = {}
            for i, p in enumerate(params):
                by_shape.setdefault(p.shape, []).append(i)
            for shape, index in by_shape.items():
                stacked = torch.stack([updates[i] for i in index])
                ortho = orthogonalize(stacked, group["ns_coefficients"], group["ns_steps"], group["eps"], self.ns_dtype)
                step = _adjust_lr(lr, group["adjust_lr_fn"], shape)
                torch._foreach_add_([params[i] for i in index], list(ortho.to(params[index[0]].dtype)), alpha=-step)
        return loss
