"""The workspace: one folder of artifacts that ties the pipeline's stages together.

Every stage reads the artifacts of earlier stages from here and writes its own,
with a ``manifest.json`` saying what made it, from which inputs (with content
hashes), when, and the counts that matter. The artifact on disk is the contract
between stages: any stage can be rerun, replaced or run on another machine.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roost import __version__

MANIFEST = "manifest.json"

# stage name -> the command that makes it (used in "run X first" messages)
STAGES: dict[str, str] = {
    "corpus": "roost ingest",
    "tokenizer": "roost tokenizer",
    "tokens": "roost tokenizer",
    "checkpoints": "roost train",
    "model": "roost train (or roost sft / roost import)",
    "index": "roost index",
}


class StageMissing(RuntimeError):
    """A stage's input artifact is not in the workspace yet."""


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory in a temporary sibling, then swap it into place.

    Yields the temporary folder to write into. On success every file is fsynced
    and the folder renamed over ``path`` (an old one is moved aside first and
    removed after), so a crash at any moment leaves either the old or the new
    folder complete. On an exception the temporary folder is removed.

    Every file ends up readable as the umask allows, like any file ``open()``
    makes: some writers create theirs private (safetensors' ``save_file`` writes
    0600), which left ``model.safetensors`` unreadable beside its 0644 siblings.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()
    plain = tmp.stat().st_mode & 0o666  # mkdir's 0o777 less the umask: the bits open() would give a file
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                mode = f.stat().st_mode & 0o7777
                if mode | plain != mode:
                    os.chmod(f, mode | plain)
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# Below this many free bytes, an I/O error is taken for a full disk: SQLite reports some ENOSPC as "disk I/O error".
NEARLY_FULL_BYTES = 1 << 20


def disk_full(e: BaseException, where: str | Path | None = None) -> BaseException | None:
    """The error in ``e`` (or wrapped by it) that shows a write was refused for lack of space, else None.

    That is ENOSPC or EDQUOT, SQLite's "database or disk is full", and any OS,
    SQLite or runtime error while the disk holding ``where`` has (almost) nothing
    free: SQLite and torch's writers report some refused writes without ENOSPC.
    Errors are unwrapped through ``__cause__``/``__context__`` and through
    torch.distributed.checkpoint's per-rank ``failures``.
    """
    import sqlite3

    stack: list[object] = [e]
    seen: set[int] = set()
    while stack:
        x = stack.pop()
        if not isinstance(x, BaseException) or id(x) in seen:
            continue  # torchrun's ChildFailedError.failures holds ProcessFailure records, not exceptions
        seen.add(id(x))
        if isinstance(x, OSError) and x.errno in (errno.ENOSPC, errno.EDQUOT):
            return x
        if isinstance(x, sqlite3.OperationalError) and "disk is full" in str(x):
            return x
        if isinstance(x, (OSError, RuntimeError, sqlite3.Error)) and where is not None and _nearly_full(where):
            return x  # RuntimeError: torch.save's zip writer reports a short write as "unexpected pos"
        failures = getattr(x, "failures", None)  # CheckpointException: rank -> (error, traceback)
        if isinstance(failures, dict):
            stack += [f[0] if isinstance(f, tuple) else f for f in failures.values()]
        stack += [x.__cause__, x.__context__]
    return None


def _nearly_full(where: str | Path) -> bool:
    path = Path(where).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def file_hash(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, in sorted order)."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f != path:
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


@dataclass
class Workspace:
    """Paths of the artifacts in one workspace folder, and their manifests."""

    root: Path

    def __init__(self, root: str | Path = "workspace"):
        self.root = Path(root)

    def path(self, stage: str) -> Path:
        return self.root / stage

    corpus = property(lambda self: self.path("corpus"))
    tokenizer = property(lambda self: self.path("tokenizer"))
    tokens = property(lambda self: self.path("tokens"))
    checkpoints = property(lambda self: self.path("checkpoints"))
    model = property(lambda self: self.path("model"))
    index = property(lambda self: self.path("index"))
    ads_db = property(lambda self: self.root / "ads.db")

    def run_dir(self, name: str) -> Path:
        d = self.root / "runs" / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def read_manifest(self, stage: str) -> dict | None:
        p = self.path(stage) / MANIFEST
        if not p.exists():
            return None
        return json.loads(p.read_text())

    def require(self, stage: str) -> dict:
        """The stage's manifest, or a clear error naming the command that makes it."""
        m = self.read_manifest(stage)
        if m is None:
            maker = STAGES.get(stage, f"the {stage} stage")
            raise StageMissing(
                f"workspace {self.root}: no {stage}/ artifact yet (missing {self.path(stage) / MANIFEST}); "
                f"run `{maker} --workspace {self.root}` first"
            )
        return m

    def stage_hash(self, stage: str) -> str:
        """Content hash of a stage's manifest: what a later stage records as its input."""
        self.require(stage)
        return file_hash(self.path(stage) / MANIFEST)

    def manifest(
        self,
        stage: str,
        inputs: dict[str, str] | None = None,
        counts: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict:
        """A manifest dict: what made the stage, from which inputs (name -> content hash), counts."""
        return {
            "stage": stage,
            "roost_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inputs": dict(inputs or {}),
            "counts": dict(counts or {}),
            **extra,
        }

    def write_manifest(self, stage: str, inputs=None, counts=None, *, folder: Path | None = None, **extra) -> dict:
        """Write ``manifest.json`` into the stage folder (or ``folder``, e.g. an atomic_dir tmp)."""
        m = self.manifest(stage, inputs, counts, **extra)
        atomic_write_json((folder or self.path(stage)) / MANIFEST, m)
        return m

    def up_to_date(self, stage: str, inputs: dict[str, str]) -> bool:
        """True when the stage exists and was made from exactly these inputs."""
        m = self.read_manifest(stage)
        return m is not None and m.get("inputs") == inputs
