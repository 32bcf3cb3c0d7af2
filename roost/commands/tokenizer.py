"""``roost tokenizer``: train the BPE tokenizer on the corpus (or take the imported model's), then tokenize the
corpus into shards."""

from __future__ import annotations

import argparse

from roost.cli import add_workspace_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tokenizer",
        help="train the BPE tokenizer and tokenize the corpus into train/val shards",
        description=(
            "Train byte-level BPE on the corpus posts (workspace/tokenizer/), then tokenize every post "
            "into train and validation token shards (workspace/tokens/). Each step is skipped when its "
            "output was already made from the same inputs and settings. With --from-model the tokenizer is "
            "workspace/model's (a model brought in by `roost import`), so `roost train --init model` can continue "
            "pretraining it in its own vocabulary."
        ),
    )
    p.add_argument(
        "--vocab-size", type=int, default=None, help="vocabulary size, special tokens included (default: 8192)"
    )
    p.add_argument(
        "--from-model",
        action="store_true",
        help="use workspace/model's tokenizer as it is instead of training one (for `roost train --init model`)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.01,
        help="fraction of posts held out for validation, chosen by a hash of the post id (default: 0.01)",
    )
    p.add_argument("--force", action="store_true", help="retrain and retokenize even when up to date")
    add_workspace_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from roost.cli import UserError
    from roost.tokenizer import TokenizerConfig, adopt_model_tokenizer_stage, train_tokenizer_stage
    from roost.tokens import tokenize_corpus
    from roost.workspace import Workspace

    ws = Workspace(args.workspace)
    if args.from_model:
        if args.vocab_size is not None:
            raise UserError("--vocab-size does not go with --from-model: the model's tokenizer fixes the vocabulary")
        tm = adopt_model_tokenizer_stage(ws, args.val_fraction, force=args.force)
    else:
        sized = {"vocab_size": args.vocab_size} if args.vocab_size is not None else {}
        cfg = TokenizerConfig(val_fraction=args.val_fraction, **sized)
        tm = train_tokenizer_stage(ws, cfg, force=args.force)
    print(
        f"tokenizer: {tm['vocab_size']} tokens, {tm['bytes_per_token']:.3f} bytes/token on "
        f"{tm['counts']['val_posts']} held-out posts -> {ws.tokenizer}"
        + (f" (from {ws.model})" if args.from_model else "")
    )
    if not args.from_model and tm["vocab_size"] < cfg.vocab_size:
        print(f"tokenizer: note: asked for {cfg.vocab_size} tokens; the corpus has too few repeated pairs for more")
    km = tokenize_corpus(ws, force=args.force)
    c = km["counts"]
    print(
        f"tokens: train {c['train_tokens']:,} tokens in {c['train_docs']:,} posts, "
        f"val {c['val_tokens']:,} tokens in {c['val_docs']:,} posts ({km['dtype']}) -> {ws.tokens}"
    )
    return 0
