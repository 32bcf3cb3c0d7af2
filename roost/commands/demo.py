"""``roost demo``: build every stage on the built-in sample network, then serve it (what ``make demo`` runs)."""

from __future__ import annotations

import argparse

from roost.cli import add_config_flags, add_workspace_arg, config_defaults

# flag -> help; each default is roost.demo.DemoConfig's, read from it for the help text (argparse defaults are
# None, so only given flags override the config)
_FLAGS: dict[str, tuple[type, str]] = {
    "train_minutes": (float, "pretraining time budget in minutes"),
    "sft_minutes": (float, "chat fine-tuning time budget in minutes"),
    "sft_min_shared_words": (int, "SFT keeps a reply only while it shares this many content words with its parent"),
    "depth": (int, "transformer layers; width = 64 x depth"),
    "posts": (int, "posts in the sample network"),
    "users": (int, "users in the sample network"),
    "retriever_steps": (int, "steps of search's post encoder; 0 skips the retriever"),
    "retriever_query_steps": (int, "steps of search's query encoder (the fine-tuned model)"),
    "host": (str, "address to serve on"),
    "port": (int, "port to serve on"),
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on the sample network and serve it",
        description="sample -> ingest -> tokenizer -> train -> sft -> retriever -> index -> ads -> serve. Each stage "
        "is skipped when its artifact is up to date, so a second run starts serving in seconds. "
        "The defaults fit the first run in about 10 minutes on 2 idle CPU cores.",
    )
    from roost.demo import DemoConfig

    add_workspace_arg(p)
    add_config_flags(p, _FLAGS, config_defaults(DemoConfig))
    p.add_argument("--no-serve", action="store_true", help="build the stages and stop")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from roost.demo import Demo, DemoConfig

    given = {k: v for k, v in vars(args).items() if k in _FLAGS and v is not None}
    demo = Demo(DemoConfig(workspace=args.workspace, **given))
    demo.build()
    print("\n" + demo.summary())
    if not args.no_serve:
        demo.serve()
    return 0
