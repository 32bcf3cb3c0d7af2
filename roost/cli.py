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
from roost.errors import UserError
from roost.workspace import StageMissing, disk_full


def add_workspace_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", "-w", default="workspace", help="workspace folder (default: ./workspace)")


def config_defaults(config: object) -> dict[str, object]:
    """A config dataclass's (or instance's) field values: the defaults that ``--help`` shows."""
    from dataclasses import MISSING, fields, is_dataclass

    if not isinstance(config, type):
        return {f.name: getattr(config, f.name) for f in fields(config)}
    assert is_dataclass(config), config
    return {
        f.name: f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default
        for f in fields(config)
        if f.default is not MISSING or f.default_factory is not MISSING
    }


def add_config_flags(parser, flags: dict[str, tuple[type, str]], defaults: dict[str, object]) -> None:
    """``--name`` for each of ``flags`` (name -> (type, help)). The argparse default is None, so only the flags a
    user gives override the config; the help's "(default: X)" comes from ``defaults`` (:func:`config_defaults`),
    so every default is written once, in its dataclass. A None default adds nothing: the help says what unset
    means."""
    for name, (kind, text) in flags.items():
        default = defaults.get(name)
        help_text = text if default is None else f"{text} (default: {default})"
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=help_text)


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
    # Only mistakes the user can fix print as one line (a missing file names itself); any other exception is a bug
    # and keeps its traceback.
    try:
        return int(args.func(args) or 0)
    except (UserError, StageMissing, FileNotFoundError) as e:
        if full := disk_full(e, getattr(args, "workspace", None)):
            return _disk_full(args, full)
        print(f"roost {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BaseException as e:  # BaseException: torch.distributed.checkpoint's CheckpointException is one
        full = None if isinstance(e, SystemExit) else disk_full(e, getattr(args, "workspace", None))
        if full is None:
            raise
        return _disk_full(args, full)


def _disk_full(args: argparse.Namespace, cause: BaseException) -> int:
    """One clear line for a full disk; every artifact is written aside and swapped in whole, so nothing is lost."""
    where = getattr(args, "workspace", None)
    print(
        f"roost {args.command}: error: the disk is full{f' (workspace {where})' if where else ''}: {cause}. "
        "Nothing was replaced: the previous artifacts are intact. Free some space and run it again.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
