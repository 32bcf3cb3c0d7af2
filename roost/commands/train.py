"""``roost train``: pretrain the model on the workspace's token shards (resumable; torchrun for many processes)."""

from __future__ import annotations

import argparse

from roost.cli import add_workspace_arg

# flag -> (type, help); every default lives in roost.train.config.TrainConfig, so argparse defaults are None
# and only the flags a user gives override it (which is also what --resume needs).
_FLAGS: dict[str, tuple[type, str]] = {
    "depth": (int, "transformer layers; width = 64 x depth (default: 4)"),
    "max_seq_len": (int, "the model's context length (default: 1024)"),
    "seq_len": (int, "tokens per training sequence, at most --max-seq-len (default: 256)"),
    "device_batch": (int, "sequences per micro-batch on each device (default: 16)"),
    "batch_tokens": (int, "tokens per optimizer step = device_batch x seq_len x grad_accum x world_size "
                          "(default: one micro-batch per device)"),
    "steps": (int, "optimizer steps to train"),
    "tokens": (int, "training tokens (rounded up to whole steps)"),
    "minutes": (float, "training time budget in minutes (the schedule follows the clock)"),
    "optimizer": (str, "muon (Muon for block matrices, AdamW for the rest) or adamw (default: muon)"),
    "lr": (float, "peak learning rate of the block matrices (default: derived from the width, see roost/train/optim.py)"),
    "schedule": (str, "cosine or wsd (warmup-stable-decay) (default: wsd)"),
    "warmup": (int, "linear warmup steps (default: 20)"),
    "cooldown": (float, "wsd: fraction of the run spent decaying (default: 0.4)"),
    "min_lr": (float, "final learning rate as a fraction of the peak (default: 0)"),
    "grad_clip": (float, "clip the global gradient norm to this; 0 disables (default: 1.0)"),
    "eval_every": (int, "evaluate on validation every N steps (default: 100)"),
    "eval_tokens": (int, "validation tokens per evaluation (default: 65536)"),
    "ckpt_every": (int, "checkpoint every N steps; always at the end (default: 500)"),
    "keep": (int, "checkpoints kept on disk (default: 3)"),
    "device": (str, "auto, cpu, cuda or mps (default: auto)"),
    "run": (str, "run name: metrics and plots go to workspace/runs/NAME (default: pretrain)"),
    "seed": (int, "seed of the weights and the data order (default: 1337)"),
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="pretrain the model on the token shards",
        description=(
            "Pretrain a GPT on workspace/tokens/ with BOS-aligned packed sequences. Checkpoints go to "
            "workspace/checkpoints/ (--resume continues the newest exactly), metrics and loss.png to "
            "workspace/runs/NAME/, and the trained model to workspace/model/ (Hugging Face Llama format). "
            "For many processes: torchrun --nproc-per-node N -m roost train ..."
        ),
    )
    for name, (kind, text) in _FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=text)
    p.add_argument("--tie-embeddings", action="store_true", default=None, help="share the embedding and lm_head weights")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--resume", action="store_true", help="continue from workspace/checkpoints/latest")
    p.add_argument("--fresh", action="store_true", help="delete existing checkpoints and start over")
    add_workspace_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from roost.cli import UserError
    from roost.train import TrainConfig, train
    from roost.train.loop import saved_config
    from roost.workspace import Workspace

    if args.resume and args.fresh:
        raise UserError("give --resume or --fresh, not both")
    ws = Workspace(args.workspace)
    given = {k: v for k, v in vars(args).items() if v is not None and k in (*_FLAGS, "tie_embeddings", "compile")}
    cfg = saved_config(ws).resumed_with(given) if args.resume else TrainConfig(**given)
    result = train(ws, cfg, resume=args.resume, fresh=args.fresh)
    if result.model_dir is not None:  # rank 0
        val = f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""
        bpb = f", {result.val_bpb:.4f} bits/byte" if result.val_bpb is not None else ""
        print(f"trained to step {result.step}{val}{bpb}; checkpoint {result.checkpoint}; "
              f"model -> {result.model_dir}; metrics -> {result.run_dir}")
    return 0
