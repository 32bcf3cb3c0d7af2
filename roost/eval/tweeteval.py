"""TweetEval tasks on disk: TASK/{train,val}_text.txt, TASK/{train,val}_labels.txt, mapping.txt.

One text per line and one integer label per line (``roost.labelled.read_labelled``
reads and checks them); ``mapping.txt`` holds ``id<TAB>name`` lines, in the task's
folder or its parent (stance/ keeps one mapping for its five targets). A task is
any folder under the root with a ``val_text.txt``; its name is the relative path
(``hate``, ``stance/abortion``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from roost.errors import UserError
from roost.labelled import read_labelled


@dataclass
class Task:
    name: str
    folder: Path
    label_names: list[str]

    @property
    def has_train(self) -> bool:
        return (self.folder / "train_text.txt").is_file()

    def split(self, split: str, limit: int | None = None) -> tuple[list[str], np.ndarray]:
        texts, labels = read_labelled(self.folder / f"{split}_text.txt", self.folder / f"{split}_labels.txt")
        bad = labels[(labels < 0) | (labels >= len(self.label_names))]
        if len(bad):
            raise UserError(
                f"{self.folder / f'{split}_labels.txt'}: label {int(bad[0])} is not in the task's "
                f"mapping (0..{len(self.label_names) - 1})"
            )
        return texts[:limit], labels[:limit]


def read_mapping(folder: Path) -> list[str]:
    for candidate in (folder / "mapping.txt", folder.parent / "mapping.txt"):
        if candidate.is_file():
            names: dict[int, str] = {}
            for i, line in enumerate(candidate.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                key, _, name = line.partition("\t")
                try:
                    names[int(key)] = name.strip() or key
                except ValueError:
                    raise UserError(f"{candidate}:{i}: expected 'id<TAB>name', got {line!r}") from None
            if sorted(names) != list(range(len(names))):
                raise UserError(f"{candidate}: label ids must be 0..N-1, got {sorted(names)}")
            return [names[i] for i in range(len(names))]
    raise FileNotFoundError(f"{folder}: no mapping.txt here or in {folder.parent}")


def find_tasks(root: str | Path, names: list[str] | None = None) -> list[Task]:
    """The tasks under ``root`` (all, or those named), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"TweetEval folder {root} does not exist")
    tasks = [
        Task(str(f.relative_to(root)), f, read_mapping(f)) for f in sorted(p.parent for p in root.rglob("val_text.txt"))
    ]
    if not tasks:
        raise UserError(f"{root}: no task folders (folders with val_text.txt) found")
    if names:
        known = {t.name for t in tasks}
        unknown = [n for n in names if n not in known and not any(k.startswith(n + "/") for k in known)]
        if unknown:
            raise UserError(f"unknown task(s) {unknown}; {root} has {sorted(known)}")
        tasks = [t for t in tasks if any(t.name == n or t.name.startswith(n + "/") for n in names)]
    return tasks
