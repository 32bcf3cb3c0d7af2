"""`roost sample`: write the built-in sample network (posts, users, follows, ads, ground truth)."""

from __future__ import annotations

import argparse
from pathlib import Path

from roost.cli import add_workspace_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sample",
        help="generate the built-in synthetic social network",
        description="Generate a synthetic social network as Twitter API v2 JSONL (posts.jsonl), users.jsonl, "
        "follows.csv, an ad inventory (ads.json) and ground truth (truth/). Same seed, same bytes.",
    )
    add_workspace_arg(p)
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <workspace>/sample)")
    p.add_argument("--users", type=int, default=2000, help="number of users (default: 2000)")
    p.add_argument("--posts", type=int, default=50_000, help="number of posts, dirt included (default: 50000)")
    p.add_argument("--campaigns", type=int, default=200, help="number of ad campaigns (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--start", default="2024-01-01", help="first day of posts, UTC (default: 2024-01-01)")
    p.add_argument("--days", type=int, default=180, help="days the posts span (default: 180)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from roost.sample import generate

    out = args.out if args.out is not None else Path(args.workspace) / "sample"
    s = generate(
        out,
        users=args.users,
        posts=args.posts,
        seed=args.seed,
        campaigns=args.campaigns,
        start=args.start,
        days=args.days,
        progress=True,
    )
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(s.kinds.items()))
    dirt = ", ".join(f"{k} {v}" for k, v in sorted(s.dirt.items()))
    print(f"wrote sample network to {out} (seed {args.seed})")
    print(f"  users.jsonl   {s.users} users")
    print(f"  follows.csv   {s.follows} follows")
    print(f"  posts.jsonl   {s.posts} posts: {kinds}")
    print(f"                rewritten: {dirt or 'none'}")
    print(f"  ads.json      {s.campaigns} campaigns")
    print(f"  truth/        {', '.join(f.removeprefix('truth/') for f in s.files if f.startswith('truth/'))}")
    return 0
