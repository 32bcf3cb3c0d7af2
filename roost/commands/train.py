"""``roost train``: pretrain the model on the workspace's token shards (resumable; torchrun for many processes).

``--nproc N`` launches the same command under torchrun (``torch.distributed.run``)
with N processes on this machine, or on each of ``--nnodes`` machines that meet
at ``--rdzv-endpoint``; it is the same as running
``torchrun --nproc-per-node N -m roost train ...`` yourself.
"""

from __future__ import annotations

import argparse
import os

from roost.cli import add_config_flags, add_workspace_arg, config_defaults
from roost.train.config import TrainConfig

# flag -> (type, help); every default lives in roost.train.config.TrainConfig (add_config_flags shows it), so
# argparse defaults are None and only the flags a user gives override it (which is also what --resume needs).
_FLAGS: dict[str, tuple[type, str]] = {
    "init": (
        str,
        (
            "scratch (random weights) or model: continue pretraining workspace/model/, e.g. a Hugging Face "
            "Llama brought in by `roost import`, on token shards made by `roost tokenizer --from-model`; "
            "its shape fixes --depth, --max-seq-len and --tie-embeddings"
        ),
    ),
    "depth": (int, "transformer layers; width = 64 x depth"),
    "max_seq_len": (int, "the model's context length"),
    "seq_len": (int, "tokens per training sequence, at most --max-seq-len"),
    "device_batch": (int, "sequences per micro-batch on each device"),
    "batch_tokens": (
        int,
        (
            "tokens per optimizer step = device_batch x seq_len x grad_accum x world_size "
            "(default: one micro-batch per device)"
        ),
    ),
    "steps": (int, "optimizer steps to train"),
    "tokens": (int, "training tokens (rounded up to whole steps)"),
    "minutes": (float, "training time budget in minutes (the schedule follows the clock)"),
    "clock": (
        str,
        (
            "what --minutes and the logged seconds count: wall (elapsed time) or cpu (this process's CPU time, "
            "all threads; a fair budget for runs sharing a busy machine)"
        ),
    ),
    "threads": (
        str,
        (
            "fixed (torch's count: one a core, or OMP_NUM_THREADS; bitwise repeatable) or auto (fewer while other "
            "work keeps the cores busy, rechecked every 100 steps: much faster on a shared machine, not repeatable)"
        ),
    ),
    "optimizer": (str, "muon (Muon for block matrices, AdamW for the rest) or adamw"),
    "lr": (
        float,
        "peak learning rate of the block matrices (default: derived from the width, see roost/train/optim.py)",
    ),
    "weight_decay": (
        float,
        "decoupled weight decay of the block matrices (default: 0.1)",
    ),
    "schedule": (str, "cosine or wsd (warmup-stable-decay)"),
    "warmup": (int, "linear warmup steps"),
    "cooldown": (float, "wsd: fraction of the run spent decaying"),
    "min_lr": (float, "final learning rate as a fraction of the peak"),
    "grad_clip": (float, "clip the global gradient norm to this; 0 disables"),
    "eval_every": (int, "evaluate on validation every N steps"),
    "eval_tokens": (int, "validation tokens per evaluation"),
    "ckpt_every": (int, "checkpoint every N steps; always at the end"),
    "keep": (int, "checkpoints kept on disk"),
    "device": (str, "auto, cpu, cuda or mps"),
    "dtype": (
        str,
        (
            "compute dtype: bfloat16 (autocast, fp32 master weights), float32, or auto: bfloat16 on CUDA "
            "GPUs with bf16 and on CPUs with AVX512-BF16 or AMX, float32 elsewhere"
        ),
    ),
    "parallel": (
        str,
        (
            "with many processes: ddp (a replica per rank) or fsdp (FSDP2, parameters, gradients and "
            "optimizer state sharded across ranks)"
        ),
    ),
    "run": (str, "run name: metrics and plots go to workspace/runs/NAME"),
    "seed": (int, "seed of the weights and the data order"),
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="pretrain the model on the token shards",
        description=(
            "Pretrain a GPT on workspace/tokens/ with BOS-aligned packed sequences. Checkpoints go to "
            "workspace/checkpoints/ (--resume continues the newest exactly), metrics and loss.png to "
            "workspace/runs/NAME/, and the trained model to workspace/model/ (Hugging Face Llama format). "
            "With --init model it continues pretraining workspace/model/ (e.g. from `roost import`) instead of "
            "random weights. For many processes: torchrun --nproc-per-node N -m roost train ..."
        ),
    )
    add_config_flags(p, _FLAGS, config_defaults(TrainConfig))
    p.add_argument(
        "--tie-embeddings", action="store_true", default=None, help="share the embedding and lm_head weights"
    )
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile each transformer block")
    p.add_argument(
        "--activation-checkpointing",
        action="store_true",
        default=None,
        help="recompute each block's activations in backward: less memory, ~1/3 more compute",
    )
    p.add_argument("--resume", action="store_true", help="continue from workspace/checkpoints/latest")
    p.add_argument("--fresh", action="store_true", help="delete existing checkpoints and start over")
    launch = p.add_argument_group("launching many processes (torchrun)")
    launch.add_argument("--nproc", type=int, default=None, help="processes on this machine (one per GPU)")
    launch.add_argument(
        "--nnodes", type=int, default=1, help="machines in the job, each running this command (default: 1)"
    )
    launch.add_argument("--rdzv-endpoint", default=None, help="HOST:PORT where the machines meet (with --nnodes > 1)")
    launch.add_argument("--rdzv-id", default="roost", help="job id shared by the machines of one job (default: roost)")
    launch.add_argument(
        "--max-restarts",
        type=int,
        default=0,
        help="restart the whole job this many times after a process fails; it resumes from the newest checkpoint",
    )
    add_workspace_arg(p)
    p.set_defaults(func=run)


_LAUNCH_ONLY = ("nproc", "nnodes", "rdzv_endpoint", "rdzv_id", "max_restarts")


def launch(args: argparse.Namespace, argv: list[str]) -> int:
    """Run ``roost train ARGV`` under torchrun (``torch.distributed.run``) with ``--nproc`` processes per machine."""
    from roost.cli import UserError

    if args.nproc < 1:
        raise UserError(f"--nproc must be at least 1, got {args.nproc}")
    if "LOCAL_RANK" in os.environ:
        raise UserError("--nproc launches torchrun itself; under torchrun, leave --nproc out")
    if args.nnodes > 1 and not args.rdzv_endpoint:
        raise UserError(f"--nnodes {args.nnodes} needs --rdzv-endpoint HOST:PORT (a machine all of them can reach)")
    if args.max_restarts < 0:
        raise UserError(f"--max-restarts must be >= 0, got {args.max_restarts}")
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    where = (
        ["--standalone"]
        if args.nnodes == 1
        else [
            "--nnodes",
            str(args.nnodes),
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            args.rdzv_endpoint,
            "--rdzv-id",
            args.rdzv_id,
        ]
    )
    torchrun_args = get_args_parser().parse_args(
        [*where, "--nproc-per-node", str(args.nproc), "--max-restarts", str(args.max_restarts), "-m", "roost"]
    )
    torchrun_args.training_script_args = ["train", *argv]  # set, not parsed: torchrun's parser would take --run
    try:
        torchrun(torchrun_args)
    except ChildFailedError as e:  # its message names the rank that failed first, with that rank's error
        raise UserError(f"training failed:\n{e}") from None
    return 0


def _forwarded_argv(args: argparse.Namespace) -> list[str]:
    """The command line of this ``roost train``, less the launcher's flags, for each process to run."""
    argv = ["--workspace", str(args.workspace)]
    for name, value in vars(args).items():
        if name in _LAUNCH_ONLY or name in ("workspace", "func", "command") or value is None or value is False:
            continue
        argv += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return argv


def run(args: argparse.Namespace) -> int:
    from torch.distributed.elastic.multiprocessing.errors import record

    from roost.cli import UserError

    if args.resume and args.fresh:
        raise UserError("give --resume or --fresh, not both")
    if args.nproc is not None:
        _config(args).grad_accum(args.nproc * args.nnodes)  # a bad flag is reported once, before any process starts
        return launch(args, _forwarded_argv(args))
    if args.nnodes != 1 or args.rdzv_endpoint or args.max_restarts:
        raise UserError("--nnodes, --rdzv-endpoint and --max-restarts go with --nproc (or give them to torchrun)")
    if "TORCHELASTIC_ERROR_FILE" in os.environ:  # under torchrun: a rank's uncaught error goes where torchrun shows it
        return record(_train)(args)
    return _train(args)


def _config(args: argparse.Namespace):
    """The run's TrainConfig: the flags given, over the checkpoint's config with ``--resume``."""
    from roost.cli import UserError
    from roost.train.config import MODEL_FIXED, TrainConfig, flag
    from roost.train.pretrain import saved_config
    from roost.workspace import Workspace

    bools = ("tie_embeddings", "compile", "activation_checkpointing")
    given = {k: v for k, v in vars(args).items() if v is not None and k in (*_FLAGS, *bools)}
    fixed = [f"--{flag(k)}" for k in MODEL_FIXED if k in given]
    if given.get("init") == "model" and fixed:
        raise UserError(
            f"{', '.join(fixed)} cannot go with --init model: the model in workspace/model/ fixes its shape"
        )
    return saved_config(Workspace(args.workspace)).resumed_with(given) if args.resume else TrainConfig(**given)


def _train(args: argparse.Namespace) -> int:
    from roost.train.pretrain import train
    from roost.workspace import Workspace

    result = train(Workspace(args.workspace), _config(args), resume=args.resume, fresh=args.fresh)
    if result.model_dir is not None:  # rank 0
        val = f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""
        bpb = f", {result.val_bpb:.4f} bits/byte" if result.val_bpb is not None else ""
        print(
            f"trained to step {result.step}{val}{bpb}; checkpoint {result.checkpoint}; "
            f"model -> {result.model_dir}; metrics -> {result.run_dir}"
        )
    return 0
