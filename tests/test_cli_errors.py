"""``roost``'s errors: a user's mistake is one line and exit code 2; a bug keeps its traceback."""

from __future__ import annotations

import pytest

import roost.search.eval
from roost.cli import main
from roost.errors import UserError


def test_a_user_mistake_is_one_line_without_traceback(tmp_path, capsys):
    ws = str(tmp_path / "workspace")
    assert main(["train", "--workspace", ws, "--warmup", "-1"]) == 2  # TrainConfig refuses it
    assert main(["eval", "search", "--workspace", ws]) == 2  # nothing to evaluate
    err = capsys.readouterr().err
    assert "roost train: error: --warmup must be >= 0 steps, got -1" in err
    assert "roost eval: error: nothing to evaluate" in err
    assert "Traceback" not in err


def test_a_bug_is_not_mistaken_for_a_user_error(tmp_path, monkeypatch):
    """A ValueError that is not a UserError (a bug's) propagates with its traceback instead of printing as one."""

    def bug(*_args, **_kwargs):
        raise ValueError("internal invariant broken")

    monkeypatch.setattr(roost.search.eval, "evaluate_workspace", bug)
    with pytest.raises(ValueError, match="internal invariant broken"):
        main(["eval", "search", "--workspace", str(tmp_path), "--truth", str(tmp_path)])


def test_user_error_is_a_value_error():
    """Library callers that catch ValueError for bad input (the server's 400s) still catch it."""
    assert issubclass(UserError, ValueError)
