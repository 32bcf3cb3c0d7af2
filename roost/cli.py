"""The ``roost`` command. Thin: each subcommand lives in ``roost/commands/<name>.py``.

A command module defines ``register(subparsers)`` which adds its parser(s) and
sets ``func`` to a handler taking the parsed args. Handlers import heavy
libraries (torch, tantivy, ...) themselves so ``roost --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from roost import __version__, commands
from roost.workspace import StageMissing


class UserError(Exception):
    """A problem the user can fix; printed without a traceback, exit code 2."""


def add_workspace_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", "-w", default="workspace", help="workspace folder (default: ./workspace)")


# Command modules in pipeline order, so `roost --help` reads top to bottom; others follow by name.
PIPELINE_ORDER = ("sample", "corpus", "tokenizer", "train", "sft", "export", "index", "ads", "serve", "eval", "demo")


def _order(name: str) -> tuple[int, str]:
    return (PIPELINE_ORDER.index(name) if name in PIPELINE_ORDER else len(PIPELINE_ORDER), name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roost", description="Train a language model on posts; chat, search, ads.")
    parser.add_argument("--version", action="version", version=f"roost {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: _order(m.name)):
        importlib.import_module(f"roost.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, StageMissing, ValueError, FileNotFoundError) as e:
        print(f"roost {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
