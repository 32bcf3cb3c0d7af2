"""Cross-entropy over the lm_head, fused: the loss and its gradient in one cache-sized pass over the logits.

Why: the usual path (``F.linear`` then ``F.cross_entropy(logits.float())``)
keeps the [tokens, vocab] logits three times over (the logits, a float copy,
the log-softmax that backward needs) and backward makes two more of that size:
232 MiB at 2048 tokens x 8192 classes in bf16. Here forward computes the logits
with one matmul and then, a few rows at a time while they sit in cache, the
loss and the gradient of the logits (``softmax - one_hot``), written over the
logits in place; backward is the two matmuls that remain. The same arithmetic
in 47 MiB, and 4-9% faster (1.8x faster where glibc's malloc page-faults each of
the usual path's fresh tensors in, which ``roost train`` avoids: see
roost/train/allocator.py and BENCHMARKS.md, "Training").

PyTorch's own ``F.linear_cross_entropy(options=LinearCrossEntropyOptions())``
does the chunking too, but measured far slower on CPU here (442 ms against 154
for this and 164 for the plain path, 2048 tokens x 8192 classes, bf16), so it is
not used.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100
# fp32 logits worked on at once: on a CPU what stays in cache (64 rows at vocab 8192; 32-128 rows measured alike);
# on a GPU few enough kernel launches, at a bounded temporary
CHUNK_BYTES = {"cpu": 2 << 20}
DEFAULT_CHUNK_BYTES = 128 << 20


def rows_per_chunk(device: torch.device, vocab_size: int) -> int:
    return max(1, CHUNK_BYTES.get(device.type, DEFAULT_CHUNK_BYTES) // (4 * vocab_size))


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, mean: bool) -> torch.Tensor:
        grad_logits = hidden @ weight.t()  # the logits now; the gradient of the loss once the loop is done
        losses = torch.empty(hidden.size(0), dtype=torch.float32, device=hidden.device)
        kept = (targets != IGNORE_INDEX).float()
        # each row's gradient is scaled here, in fp32, before any rounding to the logits' dtype
        row_scale = kept / kept.sum() if mean else kept  # a mean over no targets is nan, as in F.cross_entropy
        chunk = rows_per_chunk(hidden.device, weight.size(0))
        # low-precision logits go through one fp32 buffer, not a fresh tensor a chunk (4,096 tokens x 8,192 classes,
        # bf16, 2 threads: forward and backward 66.0 -> 64.0 ms, the same bits); fp32 ones are worked on in place
        fp32 = grad_logits.dtype == torch.float32
        buffer = None if fp32 else grad_logits.new_empty(min(chunk, len(hidden)), weight.size(0), dtype=torch.float32)
        for start in range(0, hidden.size(0), chunk):
            rows = slice(start, start + chunk)
            target = targets[rows].clamp(min=0)[:, None]  # ignored rows: any class, their scale is 0
            logits = grad_logits[rows] if buffer is None else buffer[: target.size(0)].copy_(grad_logits[rows])
            top = logits.amax(dim=-1, keepdim=True)
            target_logit = logits.gather(1, target)
            probs = logits.sub_(top).exp_()  # one exp pass: the softmax and the log-sum-exp both come from it
            total = probs.sum(dim=-1, keepdim=True)
            losses[rows] = (total.log() + top - target_logit).squeeze(1)
            scale = row_scale[rows, None]
            probs.mul_(scale / total).scatter_add_(1, target, -scale)  # (softmax - one_hot) * scale
            grad_logits[rows] = probs
        ctx.save_for_backward(hidden, weight, grad_logits)
        return (losses * row_scale).sum()

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        hidden, weight, grad_logits = ctx.saved_tensors
        grad_loss = grad_loss.to(grad_logits.dtype)
        grad_hidden = (grad_logits @ weight).mul_(grad_loss) if ctx.needs_input_grad[0] else None
        grad_weight = (grad_logits.t() @ hidden).mul_(grad_loss) if ctx.needs_input_grad[1] else None
        return grad_hidden, grad_weight, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"):
    """``F.cross_entropy(F.linear(hidden, weight).float(), targets, ignore_index=-100, reduction=...)``, for training.

    ``hidden`` is [..., C], ``weight`` [V, C], ``targets`` [...]; ``reduction``
    is "sum" or "mean" (per-token losses need the logits: use the usual path).
    Under autocast the matmuls run in the autocast dtype, as ``F.linear``'s would.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"linear_cross_entropy: reduction must be 'sum' or 'mean', got {reduction!r}")
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
    with torch.autocast(device_type, enabled=False):
        return _LinearCrossEntropy.apply(
            hidden.reshape(-1, hidden.size(-1)), weight, targets.reshape(-1), reduction == "mean"
        )
