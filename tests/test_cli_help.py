"""Every default ``--help`` shows is the config dataclass's own, written once (issue 15: `roost demo --help` once
said 6,000 posts while the run used 50,000)."""

from __future__ import annotations

import argparse

import pytest

from roost.cli import build_parser, config_defaults
from roost.demo import DemoConfig
from roost.sample.generate import SampleConfig
from roost.train.config import TrainConfig
from roost.train.sft_config import SFTConfig


def subcommand(name: str) -> argparse.ArgumentParser:
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


def sft_defaults() -> dict:
    cfg = SFTConfig()
    return {**config_defaults(cfg.train), **config_defaults(cfg.mining), **config_defaults(cfg)}


@pytest.mark.parametrize(
    "command, defaults",
    [
        ("train", lambda: config_defaults(TrainConfig)),
        ("sft", sft_defaults),
        ("demo", lambda: config_defaults(DemoConfig)),
        ("sample", lambda: config_defaults(SampleConfig)),
    ],
)
def test_help_shows_each_config_default_and_argparse_leaves_it_to_the_config(command, defaults):
    values = defaults()
    shown = 0
    for action in subcommand(command)._actions:
        if action.dest not in values or action.option_strings[0] in ("--workspace", "-w"):
            continue
        default = values[action.dest]
        if default is not None and not isinstance(default, bool) and action.help is not None:
            assert action.help.endswith(f"(default: {default})"), (command, action.dest, action.help)
            assert action.help.count("(default:") == 1, (command, action.dest, action.help)  # no hand-written copy
            shown += 1
        assert action.default is None, (command, action.dest)  # only given flags override the config
    assert shown >= 4


def test_sft_help_shows_fine_tuning_defaults_not_pretraining_ones():
    helps = {a.dest: a.help for a in subcommand("sft")._actions}
    assert helps["warmup"].endswith("(default: 0)") and helps["run"].endswith("(default: sft)")
    assert {a.dest: a.help for a in subcommand("train")._actions}["warmup"].endswith("(default: 20)")


@pytest.mark.parametrize(
    ("argv", "workspace"),
    [
        (["eval", "-w", "given-before", "chat"], "given-before"),
        (["eval", "chat", "-w", "given-after"], "given-after"),
        (["eval", "--workspace", "before-search", "search"], "before-search"),
        (["eval", "chat"], "workspace"),
    ],
)
def test_eval_keeps_an_option_given_before_its_target(argv, workspace):
    """argparse copies a subparser's defaults over the parent's parsed values; `roost eval -w WS chat` used WS's
    default, ./workspace, instead."""
    args = build_parser().parse_args(argv)
    assert args.workspace == workspace
