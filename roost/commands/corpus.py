"""``roost ingest SRC...`` and ``roost corpus stats``."""

from __future__ import annotations

import argparse

from roost.cli import add_workspace_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ingest",
        help="read posts (Twitter/X archive, API JSON, CSV, Parquet, text) into workspace/corpus/",
        description="Read, normalize, filter, deduplicate and thread posts into workspace/corpus/. "
        "Sources may be gzip- or zstd-compressed; folders are read recursively. "
        "Ingesting again appends and deduplicates against what is stored.",
    )
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SRC",
        help="files or folders to read; with --engine ray also fsspec URLs (s3://, gs://, file://)",
    )
    add_workspace_arg(p)
    p.add_argument("--config", metavar="FILE", help="IngestConfig settings as JSON or TOML")
    p.add_argument("--workers", type=int, help="worker processes (default: the config's; 0 = one per core)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this machine's processes (default); ray: Ray Data jobs on a cluster (docs/scale.md)",
    )
    p.add_argument(
        "--address",
        metavar="ADDR",
        help="with --engine ray: the cluster to join (host:port or ray://...; default: RAY_ADDRESS, "
        "else a Ray started on this machine)",
    )
    p.set_defaults(func=_ingest)

    c = subparsers.add_parser("corpus", help="look at the corpus", description="Inspect workspace/corpus/.")
    csub = c.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    s = csub.add_parser(
        "stats",
        help="counts by language and day, top hashtags and authors, threads, drops",
        description="Counts by language and day, top hashtags and authors, thread depths, "
        "and the ingest accounting (read = kept + dropped + malformed).",
    )
    add_workspace_arg(s)
    s.add_argument("--top", type=int, default=10, help="rows in each top list (default: 10)")
    s.set_defaults(func=_stats)


def _ingest(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from roost.corpus import ingest, load_config
    from roost.workspace import Workspace

    cfg = load_config(args.config)
    if args.workers is not None:
        cfg = replace(cfg, workers=args.workers)
    if args.engine == "ray":
        from roost.corpus.ray_engine import ingest_ray

        report = ingest_ray(args.sources, Workspace(args.workspace), cfg, address=args.address, progress=not args.quiet)
    elif args.address:
        raise SystemExit("roost ingest: --address needs --engine ray")
    else:
        report = ingest([Path(s) for s in args.sources], Workspace(args.workspace), cfg, progress=not args.quiet)
    print(report.summary())
    return 0


def _stats(args: argparse.Namespace) -> int:
    from roost.corpus.stats import corpus_stats, format_stats
    from roost.workspace import Workspace

    print(format_stats(corpus_stats(Workspace(args.workspace)), top=args.top))
    return 0
