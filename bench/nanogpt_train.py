"""The GPT-2 recipe (bench/nanogpt.py) trained for a CPU time budget on a roost workspace's token shards.

    .venv/bin/python bench/nanogpt_train.py --workspace DIR --run gpt2 --minutes 15 --depth 4

bench/learning.py runs it beside ``roost train`` (``--runs muon,gpt2``), so both
see the same shards in the same order: the data comes through roost's own
``PackedLoader`` with ``roost train``'s seed, batch and sequence length, the
budget counts the steps' seconds only (data included, evaluation not), as
``roost train --minutes`` does, and validation is roost's ``Evaluator`` on the
same slice (``--eval-tokens``), so bits per byte mean the same for both. The
records go to ``DIR/runs/RUN/metrics.jsonl`` in ``roost train``'s format, and
the loss over the whole validation split at the end to ``final_val.json``.

The recipe is nanoGPT's: GPT-2 blocks at roost's width for the depth
(64 x depth, 64-wide heads), context = the sequence length, AdamW betas
0.9/0.95, weight decay 0.1 on the 2-D weights, peak rate 6e-4, gradient norm
clipped to 1, linear warmup, then a cosine from the peak down to 10% of it.

The schedule: the cosine runs on the fraction of the time budget spent, not
on a step count estimated from the first steps. That makes it end exactly
where the budget ends whatever happens to the step speed: on a shared CPU the
speed moves by 2x within minutes as other work comes and goes, so a step count
estimated at the start would stop the run early, with the rate still high, or
cut it off before the decay ends; that unfinished decay is what made the
first comparison unfair to the recipe (issue 21). It is also how ``roost
train --minutes`` schedules its own decay, so the two runs are scheduled
alike. The warmup is counted in steps (``--warmup``, default 20, ``roost
train``'s), as nanoGPT counts it. The price: a time-scheduled run is not
bitwise reproducible. ``--clock cpu`` counts the budget in this process's CPU
time, as ``roost train --clock cpu`` does: on a shared, loaded machine the
wall clock gives each run whatever CPU the other work leaves it.

``--dtype bfloat16`` runs forward and loss under bf16 autocast (fp32 master
weights), as nanoGPT's train.py does on a GPU with bf16 and ``roost train
--dtype auto`` does on a CPU with AMX or AVX512-BF16; on a CPU nanoGPT itself
trains in fp32 (the default here).

``--arch roost`` trains roost's ``GPT`` (RMSNorm, SwiGLU, rotary positions,
untied embeddings) with this same recipe: against the recipe on GPT-2 blocks
it measures what roost's architecture alone contributes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nanogpt import GRAD_CLIP, PEAK_LR, NanoConfig, NanoGPT, adamw  # noqa: E402

MIN_LR = 0.1  # nanoGPT's min_lr is a tenth of its peak rate


def loaders(ws, seq_len: int, batch: int, seed: int):
    """Train and validation loaders as ``roost train`` builds them on one CPU rank (same order for the same seed)."""
    from roost.tokenizer import placeholder_ids
    from roost.tokens import TokenShards
    from roost.train.data import PackedLoader

    train, val = TokenShards(ws.tokens, "train"), TokenShards(ws.tokens, "val")
    common = {"device": torch.device("cpu"), "ignore_targets": placeholder_ids(ws.tokenizer)}
    train_loader = PackedLoader(train.shards, train.doc_starts, seq_len, batch, seed=seed, **common)
    val_loader = PackedLoader(
        val.shards, val.doc_starts, seq_len, batch, shuffle=False, name="val", shrink_batch=True, **common
    )
    return train_loader, val_loader, train.vocab_size


def build_model(arch: str, vocab: int, seq_len: int, depth: int) -> torch.nn.Module:
    """GPT-2 blocks at roost's width for the depth, or roost's own ``GPT`` as ``roost train`` builds it."""
    if arch == "roost":
        from roost.model import GPT, GPTConfig

        return GPT(GPTConfig.from_depth(depth, vocab_size=vocab, max_seq_len=seq_len))
    width = 64 * depth
    return NanoGPT(NanoConfig(vocab, seq_len, depth, width // 64, width))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workspace", type=Path, required=True, help="a workspace with tokenizer/ and tokens/")
    p.add_argument("--run", default="gpt2", help="runs/RUN/ gets metrics.jsonl and final_val.json")
    p.add_argument("--minutes", type=float, required=True, help="training seconds budget / 60 (evaluation not counted)")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"), help="what --minutes counts, as roost train's")
    p.add_argument(
        "--arch",
        default="gpt2",
        choices=("gpt2", "roost"),
        help="the model: GPT-2 blocks (the recipe) or roost's GPT at the same depth (the recipe's training on roost's "
        "architecture, to isolate what the architecture contributes)",
    )
    p.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="compute dtype: fp32, or bf16 autocast with fp32 master weights",
    )
    p.add_argument("--depth", type=int, default=4, help="layers; width 64 x depth, as roost's --depth")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--device-batch", type=int, default=16)
    p.add_argument("--warmup", type=int, default=20, help="steps of linear warmup")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-tokens", type=int, default=65536, help="validation tokens per evaluation (roost's default)")
    p.add_argument("--seed", type=int, default=1337, help="data order and weights (roost train's default seed)")
    args = p.parse_args()

    from roost.precision import autocast_for
    from roost.train.evaluate import Evaluator
    from roost.train.loop import budget_clock
    from roost.train.schedule import lr_factor
    from roost.workspace import Workspace

    ws = Workspace(args.workspace)
    ws.require("tokens")
    train_loader, val_loader, vocab = loaders(ws, args.seq_len, args.device_batch, args.seed)
    torch.manual_seed(args.seed)
    width = 64 * args.depth
    model = build_model(args.arch, vocab, args.seq_len, args.depth).train()
    clock = budget_clock(args.clock)
    opt = adamw(model)
    batch_tokens = args.device_batch * args.seq_len
    autocast = autocast_for(torch.device("cpu"), getattr(torch, args.dtype))
    evaluator = Evaluator(val_loader, math.ceil(args.eval_tokens / batch_tokens), ws.tokenizer, autocast)
    run_dir = ws.run_dir(args.run)
    run_dir.mkdir(parents=True, exist_ok=True)
    budget_s = args.minutes * 60
    params = sum(t.numel() for t in model.parameters())
    print(
        f"GPT-2 recipe on {args.arch} blocks: {args.depth} layers, width {width}, {params / 1e6:.2f}M parameters, "
        f"{args.minutes:g} min ({args.clock} clock), {args.dtype}"
    )

    step, seconds = 0, 0.0
    with open(run_dir / "metrics.jsonl", "w") as log:
        while True:
            progress = seconds / budget_s
            if step % args.eval_every == 0 or progress >= 1.0:
                val = evaluator(model)
                log.write(json.dumps({"step": step, **val}) + "\n")
                log.flush()
                print(
                    f"step {step} ({seconds:.0f} s): " + ", ".join(f"{k} {v:.4f}" for k, v in val.items()), flush=True
                )
            if progress >= 1.0:
                break
            t0 = clock()
            mult = lr_factor(step, progress, warmup=args.warmup, schedule="cosine", cooldown=0.0, min_lr=MIN_LR)
            for group in opt.param_groups:
                group["lr"] = PEAK_LR * mult
            x, y = train_loader.next_batch()
            with autocast():
                loss = model(x, y)
            if isinstance(loss, tuple):  # roost's GPT gives (logits, loss)
                loss = loss[1]
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss_value = loss.item()
            dt = clock() - t0
            seconds += dt
            step += 1
            record = {"step": step, "loss": loss_value, "lr": PEAK_LR * mult, "lr_mult": mult}
            record.update(grad_norm=grad_norm.item(), tokens_per_s=batch_tokens / dt, seconds=seconds)
            log.write(json.dumps(record) + "\n")

    every = Evaluator(val_loader, val_loader.batches_per_epoch, ws.tokenizer)(model)  # the whole split, fp32
    (run_dir / "final_val.json").write_text(json.dumps({"step": step, **every}) + "\n")
    print(f"done: {step} steps; whole val split: " + ", ".join(f"{k} {v:.4f}" for k, v in every.items()))


if __name__ == "__main__":
    main()
