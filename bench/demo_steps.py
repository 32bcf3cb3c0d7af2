"""How many training steps the demo's time budget buys, per model shape, counted in CPU seconds.

    OMP_NUM_THREADS=1 nice .venv/bin/python bench/demo_steps.py --shapes 4x16x128 2x16x128

``roost demo`` budgets pretraining and SFT by the clock (3 and 1 minutes), so on a shared, loaded machine it
trains for far fewer steps than on the idle two-core machine the demo is sized for, and a figure measured after
such a run says more about the load than the recipe. This times one training step of each shape (the real
``roost.model.GPT``, forward, backward, clipping and ``roost.train.optim.build_optimizers``' Muon + AdamW, as
``roost train`` and ``roost sft`` run it) in *process CPU time* on one thread, which the load of other processes
barely moves, and prints the steps that the budgets buy on one idle core: the step counts to train with
(``roost train --steps``, ``roost sft --steps``) so that a result does not depend on the machine's load. A second
idle core only adds to them. SFT's steps cost what pretraining's do (its rows are as long, padding included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from roost.model import GPT, GPTConfig
from roost.train.optim import build_optimizers


def cpu_seconds_per_step(depth: int, batch: int, seq_len: int, vocab: int, steps: int) -> float:
    """The median process CPU time of ``steps`` training steps on random tokens (after two warm-up steps)."""
    torch.manual_seed(0)
    cfg = GPTConfig.from_depth(depth, vocab_size=vocab, max_seq_len=1024)
    model = GPT(cfg)
    optimizers = build_optimizers(model, "muon", cfg.n_embd, torch.device("cpu"))
    x, y = torch.randint(0, vocab, (batch, seq_len)), torch.randint(0, vocab, (batch, seq_len))

    def step() -> None:
        _, loss = model(x, y, loss_reduction="sum")
        (loss / y.numel()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)

    step(), step()
    times = []
    for _ in range(steps):
        t0 = time.process_time()
        step()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", nargs="+", default=["4x16x128", "2x16x128"], help="DEPTHxBATCHxSEQ_LEN")
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--steps", type=int, default=5, help="timed steps per shape")
    p.add_argument("--train-minutes", type=float, default=3.0)
    p.add_argument("--sft-minutes", type=float, default=1.0)
    args = p.parse_args()
    torch.set_num_threads(1)
    load = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else ["?"] * 3
    print(f"load average {' '.join(load)}; torch {torch.__version__}, 1 thread\n")
    print("| depth | batch | CPU s/step | tokens per CPU s | pretraining steps | SFT steps |")
    print("|---:|---:|---:|---:|---:|---:|")
    for shape in args.shapes:
        depth, batch, seq_len = (int(v) for v in shape.split("x"))
        s = cpu_seconds_per_step(depth, batch, seq_len, args.vocab, args.steps)
        print(
            f"| {depth} | {batch} x {seq_len} | {s:.3f} | {batch * seq_len / s:,.0f} | "
            f"{int(args.train_minutes * 60 / s):,} | {int(args.sft_minutes * 60 / s):,} |"
        )


if __name__ == "__main__":
    main()
