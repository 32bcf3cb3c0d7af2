"""``roost tokenizer``: train the BPE tokenizer on the corpus, then tokenize the corpus into shards."""

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
            "output was already made from the same inputs and settings."
        ),
    )
    p.add_argument("--vocab-size", type=int, default=8192, help="vocabulary size, special tokens included (default: 8192)")
    p.add_argument(
        "--val-fraction", type=float, default=0.01,
        help="fraction of posts held out for validation, chosen by a hash of the post id (default: 0.01)",
    )
    p.add_argument("--force", action="store_true", help="retrain and retokenize even when up to date")
    add_workspace_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from roost.tokenizer import TokenizerConfig, train_tokenizer_stage
    from roost.tokens import tokenize_corpus
    from roost.workspace import Workspace

    ws = Workspace(args.workspace)
    cfg = TokenizerConfig(vocab_size=args.vocab_size, val_fraction=args.val_fraction)
    tm = train_tokenizer_stage(ws, cfg, force=args.force)
    print(
        f"tokenizer: {tm['vocab_size']} tokens, {tm['bytes_per_token']:.3f} bytes/token on "
        f"{tm['counts']['val_posts']} held-out posts -> {ws.tokenizer}"
    )
    if tm["vocab_size"] < cfg.vocab_size:
        print(f"tokenizer: note: asked for {cfg.vocab_size} tokens; the corpus has too few repeated pairs for more")
    km = tokenize_corpus(ws, force=args.force)
    c = km["counts"]
    print(
        f"tokens: train {c['train_tokens']:,} tokens in {c['train_docs']:,} posts, "
        f"val {c['val_tokens']:,} tokens in {c['val_docs']:,} posts ({km['dtype']}) -> {ws.tokens}"
    )
    return 0
