"""``roost train --clock cpu``: a ``--minutes`` budget counted in the process's CPU time, not elapsed time."""

from __future__ import annotations

import json
import time

import pytest
from test_train_fixtures import make_token_workspace

from roost.cli import main
from roost.errors import UserError
from roost.train import checkpoint
from roost.train.loop import budget_clock

TINY = ["--depth", "1", "--seq-len", "32", "--max-seq-len", "64", "--device-batch", "4", "--eval-tokens", "256"]


def test_the_cpu_clock_is_process_time_and_wall_is_the_default():
    assert budget_clock("cpu") is time.process_time
    assert budget_clock("wall") is time.perf_counter
    assert budget_clock("wall", world_size=2) is time.perf_counter


def test_the_cpu_clock_is_refused_with_many_processes():
    with pytest.raises(UserError, match="--clock cpu counts one process's CPU time; with 2 processes use --clock wall"):
        budget_clock("cpu", world_size=2)


def test_a_cpu_minutes_budget_trains_to_its_end_and_is_saved(tmp_path):
    ws = make_token_workspace(tmp_path / "workspace")
    budget_s = 0.003 * 60
    argv = ["train", "--workspace", str(ws.root), *TINY, "--minutes", "0.003", "--clock", "cpu", "--run", "cpu"]
    assert main(argv) == 0
    records = [json.loads(line) for line in (ws.run_dir("cpu") / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert steps and steps[-1]["seconds"] >= budget_s  # it stopped because the CPU budget was spent
    assert all(r["seconds"] < budget_s for r in steps[:-1])  # and not before
    assert "val_loss" in records[-1]  # the final evaluation
    meta = checkpoint.read_meta(checkpoint.latest_checkpoint(ws.checkpoints))
    assert meta["config"]["clock"] == "cpu"  # --resume keeps counting the same way


def test_an_unknown_clock_is_refused(tmp_path, capsys):
    ws = make_token_workspace(tmp_path / "workspace")
    assert main(["train", "--workspace", str(ws.root), *TINY, "--minutes", "1", "--clock", "gpu"]) == 2
    assert "--clock must be one of wall, cpu, got 'gpu'" in capsys.readouterr().err
