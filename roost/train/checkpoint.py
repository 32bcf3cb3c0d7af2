"""Checkpoints: ``checkpoints/step-NNNNNN/`` folders, written atomically, the newest named by ``latest``.

Model and optimizer state go through torch.distributed.checkpoint (DCP) with
``get_state_dict``'s fully-qualified-name keys, so a checkpoint is sharded when
written by many ranks and loads at another world size. Beside it: ``meta.json``
(step, config, loader position, time trained: anything small and global) and
``rng-RANK.pt`` (torch, CUDA, numpy and Python generator states of each rank).

A folder is built under a temporary name and renamed into place
(``roost.workspace.atomic_dir``); only then is ``latest`` rewritten (atomically),
and only then are old folders pruned. A crash at any moment leaves the previous
checkpoint complete, and ``latest_checkpoint`` only ever returns complete ones.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from roost.errors import UserError
from roost.model import GPT, GPTConfig
from roost.train import dist
from roost.workspace import atomic_dir, atomic_write_text

LATEST = "latest"
META = "meta.json"
_STEP_DIR = re.compile(r"step-(\d+)")


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step-{step:06d}"


def _complete(path: Path) -> bool:
    return (path / META).is_file() and (path / ".metadata").is_file()


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.fullmatch(p.name)) and _complete(p)]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    """The folder ``latest`` names, or (if it is missing or broken) the newest complete one."""
    root = Path(root)
    pointer = root / LATEST
    if pointer.is_file():
        named = root / pointer.read_text().strip()
        if _complete(named):
            return named
    found = list_checkpoints(root)
    return found[-1] if found else None


def read_meta(path: Path) -> dict:
    return json.loads((Path(path) / META).read_text())


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def _quiet_single_process():
    """DCP warns that it 'assumes single process' even when told so (``no_dist``); that is the intent here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def save(
    root: Path,
    step: int,
    model: torch.nn.Module,
    optimizers: list[torch.optim.Optimizer],
    meta: dict,
    info: dist.DistInfo,
    keep: int,
) -> Path:
    """Write ``step-NNNNNN`` (all ranks call this), point ``latest`` at it, prune to the newest ``keep``."""
    root, final = Path(root), step_dir(root, step)
    model_state, optim_state = get_state_dict(model, optimizers)
    with atomic_dir(final) if info.is_main else contextlib.nullcontext() as tmp:
        tmp = Path(dist.broadcast_object(str(tmp) if tmp else None))  # every rank writes into rank 0's folder
        with _quiet_single_process():
            dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=tmp, no_dist=not info.distributed)
        torch.save(_rng_state(), tmp / f"rng-{info.rank}.pt")
        if info.is_main:
            _write_meta(tmp, {**meta, "step": step, "world_size": info.world_size})
        dist.barrier()  # all shards written before rank 0 renames the folder
    if info.is_main:
        atomic_write_text(root / LATEST, final.name + "\n")
        _prune(root, keep, final)
    dist.barrier()
    return final


def _write_meta(folder: Path, meta: dict) -> None:
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _prune(root: Path, keep: int, newest: Path) -> None:
    """Keep the newest ``keep`` checkpoints; remove leftovers of writes that were killed midway."""
    for old in list_checkpoints(root)[:-keep]:
        if old != newest:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob(".step-*"):
        if leftover.name.endswith((".tmp", ".old")):
            shutil.rmtree(leftover, ignore_errors=True)


def load(path: Path, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer], info: dist.DistInfo) -> dict:
    """Restore model, optimizers and this rank's RNG from ``path``; returns its meta."""
    path = Path(path)
    model_state, optim_state = get_state_dict(model, optimizers)
    state = {"model": model_state, "optim": optim_state}
    with _quiet_single_process():
        dcp.load(state, checkpoint_id=path, no_dist=not info.distributed)
    set_state_dict(model, optimizers, model_state_dict=state["model"], optim_state_dict=state["optim"])
    rng = path / f"rng-{info.rank}.pt"
    if rng.is_file():  # a rank that did not exist at save time (new world size) keeps its fresh seed
        _set_rng_state(torch.load(rng, weights_only=False))
    return read_meta(path)


def load_model(path: Path, model: torch.nn.Module) -> None:
    """Only the weights (for export and evaluation): no optimizer needed."""
    state = {"model": model.state_dict()}
    with _quiet_single_process():
        dcp.load(state, checkpoint_id=Path(path), no_dist=True)
    model.load_state_dict(state["model"])


def read_model(path: str | Path) -> tuple[GPT, dict]:
    """The model weights of a checkpoint folder (``checkpoints/step-NNNNNN``) and its meta, in eval mode."""
    meta = read_meta(Path(path))
    if "model_config" not in meta:
        raise UserError(f"{Path(path) / META}: no model_config; not a roost training checkpoint")
    model = GPT(GPTConfig.from_dict(meta["model_config"]))
    load_model(path, model)
    return model.eval(), meta
