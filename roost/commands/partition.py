"""``roost serve-partition``: serve one partition of a partitioned search index to the front."""

from __future__ import annotations

import argparse

from roost.cli import UserError, add_workspace_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve-partition",
        help="serve one partition of a partitioned search index (`roost index --partitions N`)",
        description="Serve partition I of workspace/index to the front server "
        "(`roost serve --search-partition URL ...`), which fans each query out to every partition "
        "and merges the answers. Run one process per partition and replica (docs/search-partitions.md).",
    )
    add_workspace_arg(p)
    p.add_argument("--partition", type=int, required=True, metavar="I", help="which partition, from 0")
    p.add_argument(
        "--index-dir",
        default=None,
        metavar="DIR",
        help="this replica's copy of the partition folder (default WORKSPACE/index/part-I)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8100, help="port (default 8100)")
    p.add_argument("--key", default=None, help="require 'Authorization: Bearer KEY' on every route")
    p.set_defaults(func=run_serve_partition)


def run_serve_partition(args: argparse.Namespace) -> int:
    from pathlib import Path

    import uvicorn

    from roost.search.partition import part_dir, partitions_in
    from roost.server.partition import PartitionConfig, create_partition_app
    from roost.workspace import Workspace

    ws = Workspace(args.workspace)
    parts = partitions_in(ws.read_manifest("index"))
    if parts == 0:
        raise UserError(f"{ws.index} is not partitioned; build it with `roost index --partitions N`")
    if not 0 <= args.partition < parts:
        raise UserError(f"--partition must be in 0..{parts - 1} (the index has {parts} partitions)")
    index_dir = Path(args.index_dir) if args.index_dir else part_dir(ws.index, args.partition)
    if not (index_dir / "docs.sqlite").is_file():
        raise UserError(f"{index_dir} holds no partition (docs.sqlite missing)")
    config = PartitionConfig(Path(args.workspace), args.partition, index_dir, key=args.key)
    uvicorn.run(create_partition_app(config), host=args.host, port=args.port, log_level="warning")
    return 0
