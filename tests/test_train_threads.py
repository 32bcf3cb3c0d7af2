"""The CPU thread count of training steps (roost.threads, --threads auto): fewer when they step faster."""

import json
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_train_fixtures import make_token_workspace

from roost.errors import UserError
from roost.threads import ThreadTuner, tuned_steps
from roost.train.config import TrainConfig
from roost.train.pretrain import train


@pytest.fixture
def restore_threads():
    start = torch.get_num_threads()
    yield
    torch.set_num_threads(start)


def test_fewer_threads_when_they_step_faster_and_back_when_the_machine_quiets(restore_threads):
    torch.set_num_threads(2)
    tuner = ThreadTuner(2, every=4, trial_steps=3, first_trial=1)
    assert tuner.candidates == [2, 1]
    busy = True

    def step() -> int:
        tuner.before_step()
        n = torch.get_num_threads()
        # seconds a step takes: beside a busy process 2 threads wait for each other, on a quiet machine they help
        tuner.after_step({(True, 2): 0.5, (True, 1): 0.1, (False, 2): 0.05, (False, 1): 0.1}[(busy, n)])
        return n

    used = [step() for _ in range(11)]
    assert used == [2] + [2, 2, 2, 1, 1, 1] + [1, 1, 1, 1]  # one step, the trial of each count, then the faster
    assert tuner.best == 1 and tuner.changes == [(2, 1, pytest.approx(5.0))]
    busy = False
    assert [step() for _ in range(6)] == [2, 2, 2, 1, 1, 1]  # the next trial
    assert tuner.best == 2 and torch.get_num_threads() == 2
    assert tuner.changes[-1] == (1, 2, pytest.approx(2.0))
    torch.set_num_threads(1)
    tuner.restore()
    assert torch.get_num_threads() == 2


def test_tuning_only_for_one_cpu_process_with_threads_to_spare(restore_threads):
    torch.set_num_threads(4)
    tuner = ThreadTuner.for_run(torch.device("cpu"), world_size=1)
    assert tuner is not None and tuner.candidates == [4, 3, 2]
    assert ThreadTuner.for_run(torch.device("cpu"), world_size=2) is None  # ranks share the cores already
    assert ThreadTuner.for_run(torch.device("cuda", 0), world_size=1) is None
    torch.set_num_threads(1)
    assert ThreadTuner.for_run(torch.device("cpu"), world_size=1) is None


def test_a_threads_auto_run_logs_its_threads_and_hands_the_count_back(tmp_path, restore_threads):
    torch.set_num_threads(2)
    ws = make_token_workspace(tmp_path / "ws")
    cfg = TrainConfig(depth=1, seq_len=32, max_seq_len=64, device_batch=4, warmup=2, eval_tokens=512, steps=30)
    train(ws, replace(cfg, run="auto", threads="auto"))
    records = [json.loads(line) for line in (ws.root / "runs/auto/metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 30 and all(r["threads"] in (1, 2) for r in steps)
    assert [r["threads"] for r in steps[20:26]] == [2, 2, 2, 1, 1, 1]  # the first trial: 3 steps at each count
    assert torch.get_num_threads() == 2  # whatever the run chose, the process goes on with its own count
    train(ws, replace(cfg, run="fixed"), fresh=True)  # the default: the count nobody tunes
    records = [json.loads(line) for line in (ws.root / "runs/fixed/metrics.jsonl").read_text().splitlines()]
    assert not any("threads" in r for r in records)
    with pytest.raises(UserError, match="--threads must be one of fixed, auto"):
        TrainConfig(threads="all")


def test_tuned_steps_time_the_callers_work_and_hand_the_count_back_however_the_loop_ends(restore_threads):
    torch.set_num_threads(2)
    used = []
    for _ in tuned_steps(range(14), auto=True):
        used.append(torch.get_num_threads())
        time.sleep(0.03 if used[-1] == 2 else 0.005)  # the caller's work, 6x slower on 2 threads here
    # 3 steps before the first trial, 3 at each count, then the faster count
    assert used == [2, 2, 2] + [2, 2, 2, 1, 1, 1] + [1] * 5
    assert torch.get_num_threads() == 2
    for i in tuned_steps(range(14), auto=True):
        if i == 7:  # mid-trial or after it: the caller leaves early
            break
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    assert list(tuned_steps(range(5), auto=True)) == list(range(5))  # one thread: nothing to tune
    torch.set_num_threads(2)
    seen = []
    for _ in tuned_steps(range(12), auto=False):
        seen.append(torch.get_num_threads())
    assert seen == [2] * 12


def test_embedding_on_tuned_threads_gives_the_same_vectors(restore_threads):
    from roost.ads.embedder import HashingEmbedder
    from roost.ads.retrieval import embed_in_batches

    torch.set_num_threads(2)
    embed = HashingEmbedder()
    texts = [f"post {i} about {'football' if i % 2 else 'pasta'}" for i in range(40)]
    fixed = embed_in_batches(embed, texts, batch_size=4)
    auto = embed_in_batches(embed, texts, batch_size=4, threads="auto")
    assert fixed.shape == (40, fixed.shape[1]) and np.array_equal(fixed, auto)
    assert torch.get_num_threads() == 2


def test_the_commands_refuse_an_unknown_thread_mode(tmp_path, capsys):
    from roost.cli import main

    assert main(["train-retriever", "--workspace", str(tmp_path), "--threads", "all"]) == 2
    assert "--threads must be one of fixed, auto, got 'all'" in capsys.readouterr().err
    assert main(["ads", "train-safety", "--workspace", str(tmp_path), "--threads", "all"]) == 2
    assert "--threads must be one of fixed, auto, got 'all'" in capsys.readouterr().err


def test_slow_first_steps_bring_the_first_trial_forward(restore_threads):
    torch.set_num_threads(2)
    tuner = ThreadTuner(2, every=4, trial_steps=1, first_trial=20, first_seconds=10.0)
    used = []
    for _ in range(12):
        tuner.before_step()
        used.append(torch.get_num_threads())
        tuner.after_step(6.0 if used[-1] == 2 else 1.0)  # 6 s a step on 2 threads: the trial after 2 steps
    # 2 steps (12 s), the trial (2, then 1), then 1 thread; the next trial every 4 steps, not every 10 s
    assert used == [2, 2] + [2, 1] + [1, 1, 1, 1] + [2, 1] + [1, 1]
    assert tuner.best == 1
