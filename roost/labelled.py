"""Labelled text files in the TweetEval format: one text per line, and one integer label per line.

Brand-safety probes (``roost ads train-safety --texts --labels``) and the
TweetEval evaluation (``roost.eval.tweeteval``) both read them, so the reader
lives here rather than in either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from roost.errors import UserError


def read_labelled(text_file: str | Path, label_file: str | Path) -> tuple[list[str], np.ndarray]:
    """One text per line and one integer label per line; errors name the file and line."""
    texts = Path(text_file).read_text(encoding="utf-8").splitlines()
    raw = Path(label_file).read_text(encoding="utf-8").splitlines()
    while raw and not raw[-1].strip():
        raw.pop()
    if len(texts) != len(raw):
        raise UserError(
            f"{text_file} has {len(texts)} lines but {label_file} has {len(raw)}: they must pair up line by line"
        )
    labels = []
    for i, line in enumerate(raw, 1):
        try:
            labels.append(int(line.strip()))
        except ValueError:
            raise UserError(f"{label_file}:{i}: label must be an integer, got {line!r}") from None
    return texts, np.array(labels, dtype=np.int64)
