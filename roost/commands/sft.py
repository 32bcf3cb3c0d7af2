"""``roost sft``: fine-tune the pretrained model to chat, on conversations mined from the corpus's reply threads."""

from __future__ import annotations

import argparse

from roost.cli import add_config_flags, add_workspace_arg, config_defaults
from roost.commands.train import _FLAGS as TRAIN_FLAGS
from roost.train.sft_config import SFTConfig

# The loop's flags, as `roost train` has them (the model's shape comes from the pretrained model instead)...
_TRAIN_FLAGS: dict[str, tuple[type, str]] = {
    name: TRAIN_FLAGS[name]
    for name in (
        "seq_len",
        "device_batch",
        "batch_tokens",
        "steps",
        "tokens",
        "minutes",
        "optimizer",
        "schedule",
        "min_lr",
        "grad_clip",
        "eval_tokens",
        "keep",
        "device",
        "dtype",
        "parallel",
        "threads",
        "seed",
    )
}
# ... and the flags whose help fine-tuning words its own way (the defaults: roost.train.sft_config).
_TRAIN_FLAGS.update(
    {
        "warmup": (int, "linear warmup steps"),
        "cooldown": (float, "wsd: fraction of the run spent decaying (1.0: linear decay over the whole run)"),
        "eval_every": (int, "evaluate on the validation conversations every N steps"),
        "ckpt_every": (int, "checkpoint every N steps; always at the end"),
        "run": (str, "run name: metrics and plots go to workspace/runs/NAME"),
        "lr": (float, "peak learning rate of the block matrices before --lr-frac (default: pretraining's)"),
    }
)
_MINING_FLAGS: dict[str, tuple[type, str]] = {
    "system_prompt": (str, "a system turn put before every conversation (default: none)"),
    "val_fraction": (float, "fraction of threads held out for validation"),
    "min_shared_words": (
        int,
        "cut a conversation at the first reply that shares fewer content words with the "
        "turn it answers (0 keeps every reply; 1 keeps replies that take up the question)",
    ),
    "min_answer_gain": (
        float,
        "cut a conversation at the first reply whose answer gain is below this: how much the turn it answers "
        "raises the reply's mean log-likelihood under the pretrained model, in nats per token (a reply as likely "
        "after any post gains about 0). Most replies score below 0 under a small model: with the demo's on the "
        "sample network, -0.3 drops the least answering quarter and 0 keeps a fifth, mostly answers to "
        "questions. Scores every reply once, batched, before training (default: off; it costs 5-10 ms a reply "
        "on one loaded core there and did not raise the chat's on-topic share)",
    ),
}
_SFT_FLAGS: dict[str, tuple[type, str]] = {
    "lr_frac": (float, "every learning rate is pretraining's times this"),
    "epochs": (float, "passes over the conversations, when no --steps/--tokens/--minutes (default: 1)"),
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sft",
        help="fine-tune the pretrained model on conversations from reply threads",
        description=(
            "Chat fine-tuning: each root-to-leaf path of a reply thread becomes a conversation (the root post a "
            "user turn, replies alternating assistant and user), rendered with the tokenizer's role tokens; the "
            "loss is on assistant tokens only. Starts from the newest pretraining checkpoint (else "
            "workspace/model/), checkpoints to workspace/checkpoints/sft/ (--resume continues the newest "
            "exactly) and writes the chat model to workspace/model/."
        ),
    )
    defaults = SFTConfig()  # fine-tuning's defaults, written once (roost/train/sft_config.py)
    for flags, config in ((_TRAIN_FLAGS, defaults.train), (_MINING_FLAGS, defaults.mining), (_SFT_FLAGS, defaults)):
        add_config_flags(p, flags, config_defaults(config))
    p.add_argument(
        "--all-voices",
        dest="two_party",
        action="store_false",
        default=None,
        help="keep many-voiced paths whole (default: cut a path where someone other than the root's "
        "author and the first replier speaks)",
    )
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile each transformer block")
    p.add_argument(
        "--activation-checkpointing",
        action="store_true",
        default=None,
        help="recompute each block's activations in backward: less memory, ~1/3 more compute",
    )
    p.add_argument("--resume", action="store_true", help="continue from workspace/checkpoints/sft/latest")
    p.add_argument("--fresh", action="store_true", help="delete existing SFT checkpoints and start over")
    add_workspace_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from roost.cli import UserError
    from roost.train.sft import SFTConfig, saved_sft_config, sft
    from roost.workspace import Workspace

    if args.resume and args.fresh:
        raise UserError("give --resume or --fresh, not both")
    ws = Workspace(args.workspace)

    def given(names) -> dict:
        return {k: getattr(args, k) for k in names if getattr(args, k) is not None}

    train = given((*_TRAIN_FLAGS, "compile", "activation_checkpointing"))
    mining, extra = given((*_MINING_FLAGS, "two_party")), given(_SFT_FLAGS)
    if args.resume:
        cfg = saved_sft_config(ws).resumed_with(train, mining, **extra)
    else:
        cfg = SFTConfig.make(train, mining, **extra)
    result = sft(ws, cfg, resume=args.resume, fresh=args.fresh)
    if result.model_dir is not None:  # rank 0
        val = f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""
        bpb = f", {result.val_bpb:.4f} bits/byte" if result.val_bpb is not None else ""
        print(
            f"fine-tuned to step {result.step}{val}{bpb}; checkpoint {result.checkpoint}; "
            f"chat model -> {result.model_dir}; metrics -> {result.run_dir}"
        )
    return 0
