"""``roost index`` (build the search index) and ``roost train-retriever`` (its retriever)."""

from __future__ import annotations

import argparse

from roost.cli import add_workspace_arg
from roost.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="build workspace/index/ (lexical + vector + doc store) from the corpus",
        description="Build the search index from workspace/corpus, embedding posts with "
        "workspace/model's trained retriever (else the model's pooled hidden states).",
    )
    add_workspace_arg(p)
    p.add_argument("--no-vectors", action="store_true", help="lexical search only: do not embed posts")
    p.add_argument("--batch-size", type=int, default=2048, help="posts per indexing batch (default 2048)")
    p.add_argument(
        "--partitions",
        type=int,
        default=0,
        metavar="N",
        help="split the index into N partitions by post id, each served by `roost serve-partition` "
        "(default 0: one index)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="with --partitions: build (and embed) this many partitions at once, one process each (default 1)",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="with --partitions: build in local processes or as Ray tasks on a cluster (default local)",
    )
    p.add_argument("--address", default=None, help="with --engine ray: the cluster's address (default: start one)")
    p.set_defaults(func=run_index)

    t = sub.add_parser(
        "train-retriever",
        help="train the retriever for semantic search on the corpus",
        description="Train search's retriever on the corpus, less a held-out share: a post encoder "
        "(a bag of tokens started from the served model's input embeddings) and a query "
        "encoder (the served model, fine-tuned) with InfoNCE on pairs mined from the posts "
        "(post/reply, post/its hashtags, posts sharing a rare hashtag); the hashtags it "
        "predicts per post (document expansion); then tune the fusion weights, the expansion "
        "weight and the no-match threshold on the held-out posts. Writes "
        "workspace/model/retriever.safetensors, which `roost index` and the server use.",
    )
    add_workspace_arg(t)
    t.add_argument("--steps", type=int, default=None, help="optimizer steps of the post encoder (default 1500)")
    t.add_argument(
        "--query-steps",
        type=int,
        default=None,
        help="optimizer steps of the query encoder (the fine-tuned model); 0: queries use the post "
        "encoder (default 100)",
    )
    t.add_argument(
        "--holdout",
        type=float,
        default=None,
        dest="holdout_fraction",
        help="share of the posts held out to tune search on (default 0.1)",
    )
    t.add_argument(
        "--batch-size", type=int, default=None, help="pairs per step; the rest of the batch are negatives (default 256)"
    )
    t.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-2)")
    t.add_argument("--dim", type=int, default=None, help="vector size (default: the model width)")
    t.add_argument("--max-pairs", type=int, default=None, help="at most this many mined pairs (default 100000)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument(
        "--threads",
        default=None,
        help="fixed (torch's count, the default) or auto (fewer while other work keeps the cores busy, "
        "as `roost train --threads auto`)",
    )
    t.set_defaults(func=run_train_retriever)


def run_index(args: argparse.Namespace) -> int:
    from roost.search.build import BuildConfig, build_workspace_index
    from roost.search.embed import load_search_model
    from roost.workspace import Workspace, file_hash

    ws = Workspace(args.workspace)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.partitions < 0 or args.partitions == 1:
        raise UserError(f"--partitions must be 2 or more (0: one index), got {args.partitions}")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if not args.no_vectors and not (ws.model / "config.json").is_file():
        raise UserError(
            f"no served model in {ws.model}; run `roost train` and `roost export` first, or pass --no-vectors"
        )
    config = BuildConfig(batch_size=args.batch_size)
    model_hash = None if args.no_vectors else file_hash(ws.model)
    if args.partitions:
        from roost.search.partition import build_partitioned_index

        m = build_partitioned_index(
            ws,
            args.partitions,
            model_dir=None if args.no_vectors else ws.model,
            model_hash=model_hash,
            workers=args.workers,
            engine=args.engine,
            address=args.address,
            config=config,
        )
        c = m["counts"]
        print(f"index: {c['posts']} posts in {args.partitions} partitions {c['per_partition']} -> {ws.index}")
        return 0
    embed = None if args.no_vectors else load_search_model(ws.model)
    m = build_workspace_index(ws, embed, model_hash=model_hash, config=config)
    c = m["counts"]
    print(f"index: {c['posts']} posts, {c['vectors']} vectors (dim {c['dim']}) -> {ws.index}")
    return 0


def run_train_retriever(args: argparse.Namespace) -> int:
    from roost.search.retriever import RetrieverConfig, train_workspace_retriever
    from roost.workspace import Workspace

    given = {
        k: getattr(args, k)
        for k in ("steps", "query_steps", "holdout_fraction", "batch_size", "lr", "dim", "max_pairs", "seed", "threads")
    }
    cfg = RetrieverConfig(**{k: v for k, v in given.items() if v is not None})
    report = train_workspace_retriever(Workspace(args.workspace), cfg)
    print(
        f"train-retriever: {report['pairs']} pairs, loss {report['first_loss']:.3f} -> {report['last_loss']:.3f}; "
        f"wrote {report['path']} (run `roost index` again to re-embed the posts)"
    )
    tuning = report["tuning"]
    print(f"tuned on {report['held_out_posts']} held-out posts: {tuning.get('skipped') or tuning['chosen']}")
    return 0
