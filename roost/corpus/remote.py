"""Sources a cluster reads: local paths and fsspec URLs (s3://, gs://, file://, ...), listed by the driver.

Every worker must reach every source: a local path must be on storage all nodes mount; a URL is read
with the credentials the worker's environment gives fsspec. A URL's file is copied to the worker's scratch
disk before reading, because archives and Parquet need to seek and the readers take a path.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from roost.corpus.sources import expand_sources


def is_url(source: str) -> bool:
    return "://" in source


def expand(sources: list[str]) -> list[str]:
    """Files named and the files under folders named (sorted, hidden skipped); local paths made absolute,
    so each worker reads the same file and a text line gets the same id whichever machine reads it."""
    out: list[str] = []
    for s in sources:
        if not is_url(s):
            out += [str(p.resolve()) for p in expand_sources([Path(s)])]
            continue
        import fsspec

        fs, path = fsspec.core.url_to_fs(s)
        if not fs.exists(path):
            raise FileNotFoundError(f"source {s} does not exist (or these credentials cannot see it)")
        if fs.isdir(path):
            root = PurePosixPath(path.rstrip("/"))
            found = sorted(
                p for p in fs.find(path) if not any(x.startswith(".") for x in PurePosixPath(p).relative_to(root).parts)
            )
            out += [fs.unstrip_protocol(p) for p in found]
        else:
            out.append(fs.unstrip_protocol(path))
    return out


@contextmanager
def local_file(source: str) -> Iterator[Path]:
    """A path to read ``source`` from: itself, or a scratch copy of a URL's file (removed afterwards)."""
    if not is_url(source):
        yield Path(source)
        return
    import fsspec

    suffix = "".join(PurePosixPath(source.split("://", 1)[1]).suffixes[-2:])
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp, fsspec.open(source, "rb") as src:
        shutil.copyfileobj(src, tmp, 1 << 20)
        tmp.flush()
        yield Path(tmp.name)
