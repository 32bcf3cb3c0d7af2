"""`roost sample`: write the built-in sample network (posts, users, follows, ads, ground truth)."""

from __future__ import annotations

import argparse
from pathlib import Path

from roost.cli import add_config_flags, add_workspace_arg, config_defaults

# flag -> (type, help); the defaults are roost.sample.generate.SampleConfig's
_FLAGS: dict[str, tuple[type, str]] = {
    "users": (int, "number of users"),
    "posts": (int, "number of posts, dirt included"),
    "campaigns": (int, "number of ad campaigns"),
    "seed": (int, "random seed"),
    "start": (str, "first day of posts, UTC"),
    "days": (int, "days the posts span"),
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sample",
        help="generate the built-in synthetic social network",
        description="Generate a synthetic social network as Twitter API v2 JSONL (posts.jsonl), users.jsonl, "
        "follows.csv, an ad inventory (ads.json) and ground truth (truth/). Same seed, same bytes.",
    )
    add_workspace_arg(p)
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <workspace>/sample)")
    from roost.sample.generate import SampleConfig

    add_config_flags(p, _FLAGS, config_defaults(SampleConfig))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from roost.sample import generate

    out = args.out if args.out is not None else Path(args.workspace) / "sample"
    given = {k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None}
    s = generate(out, progress=True, **given)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(s.kinds.items()))
    dirt = ", ".join(f"{k} {v}" for k, v in sorted(s.dirt.items()))
    print(f"wrote sample network to {out} (seed {s.config.seed})")
    print(f"  users.jsonl   {s.users} users")
    print(f"  follows.csv   {s.follows} follows")
    print(f"  posts.jsonl   {s.posts} posts: {kinds}")
    print(f"                rewritten: {dirt or 'none'}")
    print(f"  ads.json      {s.campaigns} campaigns")
    print(f"  truth/        {', '.join(f.removeprefix('truth/') for f in s.files if f.startswith('truth/'))}")
    return 0
