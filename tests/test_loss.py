"""The fused lm_head + cross-entropy of roost/loss.py against the usual two-step path, and the model's use of it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from roost.loss import linear_cross_entropy, rows_per_chunk
from roost.model import GPT, GPTConfig

VOCAB = 300
CHUNK = rows_per_chunk(torch.device("cpu"), VOCAB)
ROWS = 3 * CHUNK + 5  # several chunks and a ragged last one


def _reference(hidden, weight, targets, reduction):
    return F.cross_entropy(
        F.linear(hidden, weight).float().view(-1, weight.size(0)),
        targets.view(-1),
        ignore_index=-100,
        reduction=reduction,
    )


def _loss_and_grads(fn, hidden, weight, targets, reduction, dtype):
    hidden, weight = hidden.detach().requires_grad_(), weight.detach().requires_grad_()
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        loss = fn(hidden, weight, targets, reduction)
    (3 * loss).backward()  # a scale on the loss reaches the gradients (the trainer's accumulation does this)
    return loss.detach(), hidden.grad, weight.grad


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16-autocast"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_fused_loss_and_gradients_equal_linear_then_cross_entropy(dtype, reduction):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(ROWS, 32, generator=g)
    weight = torch.randn(VOCAB, 32, generator=g)
    targets = torch.randint(0, VOCAB, (ROWS,), generator=g)
    targets[:7] = -100  # ignored rows (prompt tokens in SFT, padding)
    targets[CHUNK : 2 * CHUNK] = -100  # and a whole chunk of them
    got = _loss_and_grads(linear_cross_entropy, hidden, weight, targets, reduction, dtype)
    want = _loss_and_grads(_reference, hidden, weight, targets, reduction, dtype)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
    for g_got, g_want in zip(got[1:], want[1:]):
        # bf16 rounds the gradients (~0.4% each); fp32 differs only in summation order
        assert (g_got - g_want).norm() / g_want.norm() < (1e-6 if dtype is None else 1e-2)
    assert got[1].dtype == torch.float32 and got[2].dtype == torch.float32  # fp32 master weights get fp32 grads
    assert (got[1][:7] == 0).all()  # ignored rows get no gradient


def test_a_mean_over_no_targets_is_nan_as_in_cross_entropy():
    hidden, weight = torch.randn(4, 8), torch.randn(10, 8)
    targets = torch.full((4,), -100)
    assert math.isnan(linear_cross_entropy(hidden, weight, targets).item())
    assert linear_cross_entropy(hidden, weight, targets, "sum").item() == 0.0
    with pytest.raises(ValueError, match="reduction must be 'sum' or 'mean'"):
        linear_cross_entropy(hidden, weight, targets, "none")


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied-embeddings"])
def test_the_model_trains_through_the_fused_loss_and_evaluates_through_the_logits(tie):
    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny(vocab_size=97, tie_embeddings=tie))
    idx = torch.randint(0, 97, (2, 16))
    targets = idx.roll(-1, dims=1)
    logits, loss = model(idx, targets)
    assert logits is None and loss.grad_fn is not None  # training: no [B, T, V] logits kept
    loss.backward()
    fused = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    with torch.no_grad():
        logits, eval_loss = model(idx, targets)
    assert logits.shape == (2, 16, 97)
    torch.testing.assert_close(loss.detach(), eval_loss)
    _reference(model.forward_hidden(idx), model.lm_head.weight, targets, "mean").backward()
    for name, p in model.named_parameters():  # with tied embeddings the table gets both gradients, summed
        torch.testing.assert_close(fused[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)
