"""Kill fine-tuning with SIGKILL mid-run, resume, and get bitwise the same chat model.

Each run is a real ``python -m roost sft`` process, killed at an exact moment
by the launcher of the pretraining resume test (``test_train_resume.LAUNCHER``),
which also covers a kill inside a checkpoint write: SFT saves through the same
``roost.train.checkpoint``.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file
from test_sft_fixtures import make_sft_workspace
from test_train_resume import logged_losses, run_killable, two_copies

from roost.train import checkpoint

# two micro-batches a step (gradient accumulation is resumed too), a checkpoint every 4 steps
ARGS = [
    "--seq-len",
    "48",
    "--device-batch",
    "4",
    "--batch-tokens",
    "384",
    "--steps",
    "12",
    "--ckpt-every",
    "4",
    "--eval-every",
    "5",
    "--eval-tokens",
    "192",
    "--keep",
    "2",
    "--lr-frac",
    "0.5",
    "--system-prompt",
    "be kind",
]


def _sft(launcher: Path, ws: Path, *extra: str, kill: str | None = None) -> subprocess.CompletedProcess:
    return run_killable(launcher, ["sft", *ARGS], ws, *extra, kill=kill)


def _metrics(ws: Path) -> list[tuple[int, float]]:
    return logged_losses(ws, "sft")


def test_sigkill_and_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    launcher, template, straight, interrupted = two_copies(tmp_path, make_sft_workspace)

    done = _sft(launcher, straight)
    assert done.returncode == 0, done.stderr

    killed = _sft(launcher, interrupted, kill="after_step:6")
    assert killed.returncode == -signal.SIGKILL
    ckpts = interrupted / "checkpoints/sft"
    assert checkpoint.latest_checkpoint(ckpts).name == "step-000004"

    resumed = _sft(launcher, interrupted, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not list(ckpts.glob(".step-*"))

    a = load_file(straight / "model/model.safetensors")
    b = load_file(interrupted / "model/model.safetensors")
    pretrained = load_file(template / "model/model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], pretrained[k]) for k in a)
    assert _metrics(interrupted) == _metrics(straight)  # one run: same steps, same losses, nothing twice
    assert [p.name for p in checkpoint.list_checkpoints(ckpts)] == ["step-000008", "step-000012"]
    manifest = json.loads((interrupted / "model/manifest.json").read_text())
    assert manifest["source"] == "roost sft" and manifest["sft"]["mining"]["system_prompt"] == "be kind"
