"""Dependencies point one way: commands -> stages -> shared core, and routers -> server state, never the app.

Read from the source (every ``import``, function-level ones too, since a lazy
import still ties two modules together), so nothing is imported to check it.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import roost

ROOT = Path(roost.__file__).parent
COMMAND_LEVEL = {"roost.cli", "roost.commands", "roost.__main__"}
STAGES = ("corpus", "sample", "engine", "train", "search", "ads", "eval", "server")
# the stage packages each stage may import (besides the shared core: model, tokenizer, export, workspace, ...)
ALLOWED_STAGES = {
    "corpus": set(),
    "sample": set(),
    "engine": set(),
    "train": {"corpus"},
    "search": {"corpus"},
    "ads": {"corpus"},
    "eval": {"corpus", "sample", "engine", "train", "search", "ads"},  # it measures them all
    "server": {"corpus", "engine", "search", "ads", "train"},  # train: the dashboard reads runs' metrics files
}
# shared modules that stand on a stage: the tokenizer is trained on, and the token shards made from, the corpus
CORE_ALLOWED = {"roost.tokenizer": {"corpus"}, "roost.tokens": {"corpus"}}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every roost module and the roost modules it imports (``from a import b`` counts as both ``a`` and ``a.b``)."""
    return _imports(ROOT)


@functools.cache
def _imports(root: Path) -> dict[str, set[str]]:  # parsed once for all the tests
    out: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        out[module_name(path, root)] = {m for m in found if m == "roost" or m.startswith("roost.")}
    return out


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_library_never_imports_the_command_line():
    bad = [
        (m, t)
        for m, targets in imports().items()
        if not any(under(m, c) for c in COMMAND_LEVEL)
        for t in targets
        if any(under(t, c) for c in COMMAND_LEVEL)
    ]
    assert not bad, f"library modules import the command line (move the shared code down a layer): {bad}"


def test_stages_import_only_the_stages_below_them():
    bad = []
    for m, targets in imports().items():
        stage = stage_of(m)
        for t in targets:
            other = stage_of(t)
            if (
                stage is None
                and other is not None
                and other not in CORE_ALLOWED.get(m, set())
                and not any(under(m, c) for c in COMMAND_LEVEL | {"roost.demo"})
            ):
                bad.append((m, t))  # the shared core imports a stage
            elif stage and other and other != stage and other not in ALLOWED_STAGES[stage]:
                bad.append((m, t))
    assert not bad, f"imports against the layering (commands -> stages -> core): {bad}"


def test_server_routers_never_import_the_app():
    bad = [
        (m, t)
        for m, targets in imports().items()
        if under(m, "roost.server") and m != "roost.server.app"
        for t in targets
        if under(t, "roost.server.app")
    ]
    assert not bad, f"roost.server.app imports the routers, so they must not import it (use state/errors/auth): {bad}"


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    """The rules above can fail: a planted upward import is reported."""
    pkg = tmp_path / "roost"
    (pkg / "server").mkdir(parents=True)
    (pkg / "server" / "search.py").write_text("def f():\n    from roost.server.app import APIError\n")
    (pkg / "export.py").write_text("from roost.train import checkpoint\nfrom roost.cli import UserError\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", pkg)
    found = imports()
    assert "roost.server.app" in found["roost.server.search"]
    assert {"roost.train.checkpoint", "roost.cli.UserError"} <= found["roost.export"]


def test_package_inits_import_no_submodules():
    """``from roost.train import dist`` loads just that module, whatever was imported before."""
    assert imports()["roost.train"] == set()
