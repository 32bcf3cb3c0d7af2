"""roost's Muon (roost/train/muon.py) against torch.optim.Muon: the same update, batched by shape, in a chosen dtype."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, _zeropower_via_newtonschulz

from roost.train.muon import Muon, orthogonalize

COEFFS = (DEFAULT_A, DEFAULT_B, DEFAULT_C)
SHAPES = [(24, 24), (24, 24), (40, 24), (40, 24), (24, 40), (24, 24)]  # square, tall and wide, interleaved


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in SHAPES]


def _grads(params, step: int) -> None:
    g = torch.Generator().manual_seed(100 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)


def test_batched_orthogonalisation_is_torchs_per_matrix_iteration():
    g = torch.Generator().manual_seed(0)
    stack = torch.randn(3, 40, 24, generator=g)
    ours = orthogonalize(stack, COEFFS, 5, 1e-7, torch.bfloat16)
    for i in range(3):
        theirs = _zeropower_via_newtonschulz(stack[i], COEFFS, 5, 1e-7)
        assert ours[i].shape == (40, 24)
        torch.testing.assert_close(ours[i].float(), theirs.float(), atol=2e-2, rtol=0)
    fp32 = orthogonalize(stack, COEFFS, 5, 1e-7, torch.float32)
    one = orthogonalize(stack[1:2], COEFFS, 5, 1e-7, torch.float32)
    torch.testing.assert_close(fp32[1:2], one, atol=1e-5, rtol=1e-5)
    # the iteration's point: singular values pulled from anywhere in (0, 1] into a band around 1
    s = torch.linalg.svdvals(fp32)
    assert s.min() > 0.5 and s.max() < 1.3


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_steps_match_torch_muon_and_state_moves_between_them(weight_decay):
    kwargs = dict(lr=0.02, weight_decay=weight_decay, momentum=0.95, nesterov=True, adjust_lr_fn="original")
    ours_p, theirs_p = _params(0), _params(0)
    ours = Muon(ours_p, ns_dtype=torch.bfloat16, **kwargs)
    theirs = torch.optim.Muon(theirs_p, **kwargs)
    assert isinstance(ours, torch.optim.Muon)
    for step in range(3):
        for params, opt in ((ours_p, ours), (theirs_p, theirs)):
            _grads(params, step)
            opt.step()
    for a, b, before in zip(ours_p, theirs_p, _params(0)):
        moved = (b - before).abs().max()
        assert moved > 0.01  # three steps of rate 0.02 moved every matrix
        assert torch.equal(a, b)  # batching does not change torch's bf16 arithmetic
    # torch's momentum buffers drive ours on: both continue alike from torch's state
    resumed_p = [torch.nn.Parameter(p.detach().clone()) for p in theirs_p]
    resumed = Muon(resumed_p, ns_dtype=torch.bfloat16, **kwargs)
    resumed.load_state_dict(copy.deepcopy(theirs.state_dict()))  # load_state_dict shares the buffers
    for params, opt in ((resumed_p, resumed), (theirs_p, theirs)):
        _grads(params, 3)
        opt.step()
    for a, b in zip(resumed_p, theirs_p):
        assert torch.equal(a, b)


def test_fp32_iteration_changes_only_the_rounding():
    kwargs = dict(lr=0.02, weight_decay=0.0, momentum=0.95, nesterov=True, adjust_lr_fn="original")
    fp32_p, bf16_p = _params(1), _params(1)
    fp32, bf16 = Muon(fp32_p, ns_dtype=torch.float32, **kwargs), Muon(bf16_p, ns_dtype=torch.bfloat16, **kwargs)
    for params, opt in ((fp32_p, fp32), (bf16_p, bf16)):
        _grads(params, 0)
        opt.step()
    for a, b, before in zip(fp32_p, bf16_p, _params(1)):
        assert not torch.equal(a, b)
        torch.testing.assert_close(a - before, b - before, atol=0.05 * (b - before).abs().max().item(), rtol=0)


def test_sharded_parameters_take_torchs_own_step(tmp_path):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        kwargs = dict(lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True, adjust_lr_fn="original")
        sharded = [torch.nn.Parameter(distribute_tensor(p.detach(), mesh, [Shard(0)])) for p in _params(2)]
        plain = _params(2)
        ours, theirs = Muon(sharded, ns_dtype=torch.float32, **kwargs), torch.optim.Muon(plain, **kwargs)
        assert ours.sharded and not Muon(_params(2), **kwargs).sharded
        _grads(plain, 0)
        for p, q in zip(sharded, plain):
            p.grad = distribute_tensor(q.grad, mesh, [Shard(0)])
        ours.step()
        theirs.step()
        for p, q in zip(sharded, plain):  # torch's bf16 iteration, not the fp32 one asked for unsharded
            assert torch.equal(p.full_tensor(), q)
    finally:
        dist.destroy_process_group()
