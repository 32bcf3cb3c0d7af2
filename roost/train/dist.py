"""Process groups and data parallelism: one code path for one process and for N under torchrun.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them this is rank 0 of
a world of 1 and no process group is made, so every collective below is a
no-op. Gloo on CPU, NCCL on CUDA, chosen from the device.

Two ways to spread the model over ranks, both PyTorch's own:

* ``ddp``: DistributedDataParallel, a full replica per rank, gradients
  all-reduced in buckets during backward.
* ``fsdp``: FSDP2 (``fully_shard``), each block's parameters sharded across
  ranks and all-gathered just in time, then the root (embedding, final norm,
  lm_head). On CUDA with a bf16 ``--dtype`` the gathered parameters are bf16
  and gradients are reduced in fp32 (``MixedPrecisionPolicy``); the sharded
  master weights stay fp32.

Either way the wrapped model is the same ``GPT`` module object, so
``get_state_dict`` keys, optimizers and evaluation see the same names.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from roost.errors import UserError
from roost.train.config import PARALLEL


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` takes CUDA, then MPS, then CPU; an explicit choice that is not there is refused."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if preference == "auto":
        preference = "cuda" if cuda else "mps" if mps else "cpu"
    if preference == "cuda":
        if not cuda:
            raise UserError(
                "--device cuda: no CUDA device is available (torch.cuda.is_available() is False); use --device cpu"
            )
        return torch.device("cuda", local_rank)
    if preference == "mps" and not mps:
        raise UserError("--device mps: MPS is not available on this machine; use --device cpu")
    return torch.device(preference)


def init(device_preference: str = "auto") -> DistInfo:
    """Read torchrun's environment, pick this rank's device and join the process group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        device_id = device if device.type == "cuda" else None
        if elastic_restart():
            # torchrun's TCPStore outlives a restart and still holds the failed attempt's addresses, which the new
            # ranks would dial (pytorch/pytorch#135712): give each attempt its own key space.
            store, _, _ = next(dist.rendezvous("env://", rank, world_size))
            store = dist.PrefixStore(f"roost/attempt-{elastic_restart()}", store)
            dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, device_id=device_id)
        else:
            dist.init_process_group(backend, device_id=device_id)
    return DistInfo(rank, local_rank, world_size, device)


def elastic_restart() -> int:
    """How many times torchrun (``--max-restarts``) has restarted this job; 0 on the first attempt or without torchrun."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def wrap_model(
    model: torch.nn.Module, info: DistInfo, parallel: str = "ddp", dtype: torch.dtype = torch.float32
) -> torch.nn.Module:
    """``model`` made data parallel across ranks: a DDP wrapper, or (``fsdp``) the model itself, sharded in place.

    With one process it is returned as is: there is nothing to synchronise.
    """
    if parallel not in PARALLEL:
        raise UserError(f"--parallel must be one of {', '.join(PARALLEL)}, got {parallel!r}")
    if not info.distributed:
        return model
    if parallel == "fsdp":
        return shard_model(model, info.device, dtype)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)


def shard_model(model: torch.nn.Module, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """FSDP2: ``fully_shard`` each transformer block, then the root, as torchtitan does.

    On CUDA a bf16 ``dtype`` becomes the mixed-precision policy (bf16
    parameters gathered, fp32 gradient reduction); elsewhere the loop's
    autocast does the casting.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy()
    if device.type == "cuda" and dtype != torch.float32:
        policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    blocks = list(model.layers)
    for i, block in enumerate(blocks):
        # The last block's parameters are needed again at once by backward: keep them gathered.
        fully_shard(block, mp_policy=policy, reshard_after_forward=i < len(blocks) - 1)
    fully_shard(model, mp_policy=policy)
    return model


def set_grad_sync(wrapped: torch.nn.Module, enabled: bool) -> None:
    """Reduce gradients across ranks in this backward (the last micro-batch of a step) or not (the others)."""
    if hasattr(wrapped, "set_requires_gradient_sync"):  # FSDP2
        wrapped.set_requires_gradient_sync(enabled)
    elif hasattr(wrapped, "require_backward_grad_sync"):  # DDP; what DDP's no_sync() context sets
        wrapped.require_backward_grad_sync = enabled


def apply_activation_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each block's activations in backward instead of keeping them (memory for ~1/3 more compute).

    Each block's ``forward`` is replaced on the instance rather than the block
    wrapped in another module, so parameter names (checkpoints, export) do not change.
    """
    from torch.utils.checkpoint import checkpoint

    for block in model.layers:
        forward = block.forward
        block.forward = lambda *args, _forward=forward: checkpoint(_forward, *args, use_reentrant=False)


def full_value(t: torch.Tensor) -> torch.Tensor:
    """A plain tensor from a possibly sharded one (FSDP's grad norm is a DTensor)."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_floats(values: list[float], device: torch.device) -> list[list[float]]:
    """Every rank's ``values``, in rank order (one small all_gather)."""
    if not dist.is_initialized():
        return [list(values)]
    mine = torch.tensor(values, dtype=torch.float64, device=device)
    out = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(out, mine)
    return [t.tolist() for t in out]


def unsharded(model: torch.nn.Module, make: Callable[[], torch.nn.Module]) -> torch.nn.Module | None:
    """A whole copy of an FSDP-sharded ``model`` on rank 0 (None elsewhere); an unsharded one as it is.

    Every rank must call it: the shards are gathered with a collective. ``make``
    builds an empty module of the same shape (on CPU) to load the full weights into.
    """
    from torch.distributed.tensor import DTensor

    if not any(isinstance(p, DTensor) for p in model.parameters()):
        return model
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_rank() != 0:
        return None
    whole = make()
    whole.load_state_dict(state)
    return whole


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        # FSDP modules sit in reference cycles that hold gloo work objects (and their tensors); left to the
        # interpreter's final teardown, freeing them takes the GIL from a C++ thread and aborts the process
        # ("terminate called without an active exception"). Collect them now, while Python is fully alive.
        gc.collect()
        dist.destroy_process_group()
