"""Reading source files as a stream of units, whatever their format or compression.

A *unit* is one thing read from a file at a place (file, line) that ingest will
turn into zero or more posts: a block of JSON or text lines, a JSON line, a
parsed object, a text line, a CSV/Parquet row, a user, or a ``bad`` marker for
something unreadable (a truncated stream, an over-long line). Readers only read: parsing fields and
judging records happens in :mod:`roost.corpus.records`, in worker processes.
Every reader streams, so memory stays bounded whatever the file size.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NamedTuple

import zstandard

from roost.corpus.config import IngestConfig

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZIP_MAGIC = b"PK\x03\x04"
PARQUET_MAGIC = b"PAR1"
COMPRESSED_SUFFIXES = (".gz", ".zst", ".zstd")
READ_ERRORS = (EOFError, OSError, zlib.error, zstandard.ZstdError, zipfile.BadZipFile, UnicodeDecodeError)


class Unit(NamedTuple):
    file: str
    line: int
    kind: str  # lines | json | obj | text | row | user | bad
    payload: object  # bytes, dict, or (reason, detail, snippet) for "bad"


def bad(file: str, line: int, reason: str, detail: str, snippet: bytes | str = b"") -> Unit:
    return Unit(file, line, "bad", (reason, detail, snippet[:200]))


class _ZstdReader(io.RawIOBase):
    """Streaming zstd decompression that notices a truncated stream (zstandard's reader does not)."""

    def __init__(self, raw: IO[bytes]):
        self.raw, self.buf = raw, b""
        self.dobj = zstandard.ZstdDecompressor().decompressobj()
        self.finished_frame = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self.buf:
            chunk = self.raw.read(1 << 16)
            if not chunk:
                if not self.finished_frame:
                    raise EOFError("zstd stream ended before the end of its frame (truncated file)")
                return 0
            if self.dobj.eof:  # a new frame follows the previous one
                self.dobj = zstandard.ZstdDecompressor().decompressobj()
            self.buf = self.dobj.decompress(chunk)
            self.finished_frame = self.dobj.eof
            if self.dobj.eof and self.dobj.unused_data:
                rest = self.dobj.unused_data
                self.dobj = zstandard.ZstdDecompressor().decompressobj()
                self.buf += self.dobj.decompress(rest)
                self.finished_frame = self.dobj.eof
        n = min(len(b), len(self.buf))
        b[:n], self.buf = self.buf[:n], self.buf[n:]
        return n


@contextmanager
def open_decompressed(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, gunzipped or un-zstd'ed when its first bytes say so."""
    with open(path, "rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        if magic[:2] == GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw) as f:
                yield io.BufferedReader(f, 1 << 16)
        elif magic == ZSTD_MAGIC:
            yield io.BufferedReader(_ZstdReader(raw), 1 << 16)
        else:
            yield raw


@contextmanager
def seekable_copy(path: Path) -> Iterator[Path]:
    """A plain, seekable file with the decompressed content (zip and Parquet need to seek)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    compressed = magic[:2] == GZIP_MAGIC or magic == ZSTD_MAGIC
    if not compressed:
        yield path
        return
    with tempfile.NamedTemporaryFile(suffix=logical_suffix(path)) as tmp, open_decompressed(path) as src:
        shutil.copyfileobj(src, tmp, 1 << 20)
        tmp.flush()
        yield Path(tmp.name)


def compressed_name(path: Path) -> bool:
    return path.suffix.lower() in COMPRESSED_SUFFIXES


def logical_suffix(path: Path) -> str:
    """The suffix that names the format: ``posts.jsonl.zst`` -> ``.jsonl``."""
    p = path.with_suffix("") if compressed_name(path) else path
    return p.suffix.lower()


def sniff_format(path: Path) -> str:
    """archive | tweets_js | csv | tsv | parquet | text | json (lines or one document)."""
    by_suffix = {
        ".zip": "archive",
        ".js": "tweets_js",
        ".csv": "csv",
        ".tsv": "tsv",
        ".parquet": "parquet",
        ".txt": "text",
        ".jsonl": "json",
        ".ndjson": "json",
        ".json": "json",
    }
    fmt = by_suffix.get(logical_suffix(path))
    if fmt:
        return fmt
    try:
        with open_decompressed(path) as f:
            head = f.read(64)
    except READ_ERRORS:
        return "text"
    if head.startswith(ZIP_MAGIC):
        return "archive"
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.lstrip().startswith(b"window.YTD"):
        return "tweets_js"
    if head.lstrip()[:1] in (b"{", b"["):
        return "json"
    return "text"


def iter_blocks(f: IO[bytes], max_line: int, block: int = 1 << 20) -> Iterator[tuple[int, bytes | None, int]]:
    """(first line number, bytes of whole lines, line count) blocks; ``None`` for a line over ``max_line``.

    Reading blocks rather than lines keeps the main process's share of the work
    to a few ``read`` calls; workers split the lines.
    """
    lineno, carry = 1, b""
    while True:
        chunk = f.read(block)
        if not chunk:
            if carry:
                yield lineno, carry, 1
            return
        buf = carry + chunk
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            carry = buf
            if len(carry) > max_line:  # skip to the end of this over-long line without holding it
                while chunk and b"\n" not in chunk:
                    chunk = f.read(block)
                carry = chunk[chunk.find(b"\n") + 1 :] if chunk else b""
                yield lineno, None, 1
                lineno += 1
            continue
        out, carry = buf[:cut], buf[cut:]
        n = out.count(b"\n")
        yield lineno, out, n
        lineno += n


def _line_units(f: IO[bytes], name: str, kind: str, cfg: IngestConfig) -> Iterator[Unit]:
    """``lines`` units: a block of whole lines each, to be split into ``json``/``text`` units by a worker."""
    for lineno, block, n in iter_blocks(f, cfg.max_line_bytes, max(1 << 16, cfg.batch_size * 256)):
        if block is None:
            yield bad(name, lineno, "field_too_long", f"line longer than max_line_bytes={cfg.max_line_bytes}")
        else:
            yield Unit(name, lineno, "lines", (kind, block, n))


def split_lines(u: Unit, max_line: int) -> Iterator[Unit]:
    """The ``json``/``text`` units in a ``lines`` block (blank JSON lines are not records)."""
    kind, block, _ = u.payload
    lines = block.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for i, line in enumerate(lines, u.line):
        if len(line) > max_line:
            yield bad(u.file, i, "field_too_long", f"line longer than max_line_bytes={max_line}", line)
        elif kind == "text" or line.strip():
            yield Unit(u.file, i, kind, line)


def iter_json_array(f: IO[bytes], name: str, cfg: IngestConfig, skip_prefix: bool) -> Iterator[Unit]:
    """Elements of one JSON array (optionally after a ``window.YTD.x.part0 =`` prefix), streamed."""
    dec = json.JSONDecoder()
    text = io.TextIOWrapper(f, encoding="utf-8", errors="strict")
    buf, pos, line, eof = "", 0, 1, False

    def fill() -> bool:
        nonlocal buf, pos, eof
        chunk = text.read(1 << 20)
        if not chunk:
            eof = True
            return False
        buf, pos = buf[pos:] + chunk, 0
        return True

    def skip(chars: str) -> None:
        nonlocal pos, line
        while True:
            while pos < len(buf) and buf[pos] in chars:
                line += buf[pos] == "\n"
                pos += 1
            if pos < len(buf) or not fill():
                return

    fill()
    if skip_prefix:
        while "=" not in buf[pos:] and not eof:
            fill()
        eq = buf.find("=", pos)
        if eq < 0:
            yield bad(name, line, "bad_json", "no 'window.YTD... =' assignment found", buf[:200])
            return
        line += buf.count("\n", pos, eq)
        pos = eq + 1
    skip(" \t\r\n")
    if buf[pos : pos + 1] != "[":
        yield bad(name, line, "bad_json", "expected a JSON array", buf[pos : pos + 200])
        return
    pos += 1
    item = 0
    while True:
        skip(" \t\r\n,")
        if pos >= len(buf):
            yield bad(name, line, "truncated_file", "file ended inside the JSON array")
            return
        if buf[pos] == "]":
            return
        while True:
            try:
                obj, end = dec.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as e:
                if len(buf) - pos > cfg.max_line_bytes or not fill():
                    reason = "truncated_file" if eof else "bad_json"
                    yield bad(
                        name,
                        line,
                        reason,
                        f"item {item + 1}: {e.msg}; the rest of the file is unreadable",
                        buf[pos : pos + 200],
                    )
                    return
        item += 1
        yield Unit(name, line, "obj", obj)
        line += buf.count("\n", pos, end)
        pos = end


def _account_user(data: bytes) -> dict | None:
    """The archive owner from ``data/account.js`` (``window.YTD.account.part0 = [{"account": {...}}]``)."""
    try:
        body = data.decode("utf-8")
        acc = json.loads(body[body.index("=") + 1 :])[0]["account"]
        return {
            "id": str(acc["accountId"]),
            "username": acc.get("username"),
            "name": acc.get("accountDisplayName"),
            "created_at": acc.get("createdAt"),
        }
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _tweets_js_units(f: IO[bytes], name: str, cfg: IngestConfig, account: dict | None) -> Iterator[Unit]:
    if account:
        yield Unit(name, 0, "user", account)
    for u in iter_json_array(f, name, cfg, skip_prefix=True):
        if u.kind == "obj" and account:
            obj = u.payload.get("tweet", u.payload) if isinstance(u.payload, dict) else u.payload
            if isinstance(obj, dict):
                obj.setdefault("_author_id", account["id"])
            yield Unit(u.file, u.line, "obj", obj)
        else:
            yield u


def _archive_units(path: Path, name: str, cfg: IngestConfig) -> Iterator[Unit]:
    with seekable_copy(path) as plain, zipfile.ZipFile(plain) as zf:
        members = zf.namelist()
        account = None
        acc_name = next((m for m in members if m.endswith("data/account.js")), None)
        if acc_name:
            account = _account_user(zf.read(acc_name))
        tweet_files = sorted(
            m
            for m in members
            if Path(m).parent.name == "data"
            and Path(m).name.startswith(("tweets", "tweet.", "tweet-"))
            and m.endswith(".js")
        )
        if not tweet_files:
            yield bad(name, 0, "missing_field", f"no data/tweets.js in the archive (members: {members[:10]})")
            return
        for m in tweet_files:
            with zf.open(m) as f:
                yield from _tweets_js_units(f, f"{name}:{m}", cfg, account)
                account = None  # one user row per archive


def _csv_units(f: IO[bytes], name: str, cfg: IngestConfig, delimiter: str) -> Iterator[Unit]:
    text = io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline="")
    reader = csv.DictReader(text, delimiter=delimiter)
    cols = cfg.columns
    if reader.fieldnames is None or cols.text not in reader.fieldnames:
        yield bad(
            name,
            1,
            "missing_field",
            f"no text column {cols.text!r} (columns: {reader.fieldnames}); set columns.text in the config",
        )
        return
    for row in reader:
        yield Unit(name, reader.line_num, "row", row)


def _parquet_units(path: Path, name: str, cfg: IngestConfig) -> Iterator[Unit]:
    import pyarrow.parquet as pq

    with seekable_copy(path) as plain:
        pf = pq.ParquetFile(plain)
        present = set(pf.schema_arrow.names)
        if cfg.columns.text not in present:
            yield bad(
                name,
                1,
                "missing_field",
                f"no text column {cfg.columns.text!r} (columns: {sorted(present)}); set columns.text in the config",
            )
            return
        wanted = [c for c in dict.fromkeys(vars(cfg.columns).values()) if c in present]
        row_no = 0
        for batch in pf.iter_batches(batch_size=cfg.batch_size, columns=wanted):
            for row in batch.to_pylist():
                row_no += 1
                yield Unit(name, row_no, "row", row)


def sample_network_posts(folder: Path) -> Path | None:
    """The posts file of a sample network's folder (``roost sample``), else None.

    Beside the posts such a folder holds users, ads and ground truth, which are
    not posts: read as a corpus they would all count as malformed records.
    """
    try:
        stage = json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("stage")
    except (OSError, ValueError, AttributeError):
        return None
    posts = folder / "posts.jsonl"
    return posts if stage == "sample" and posts.is_file() else None


def expand_sources(sources: list[Path]) -> list[Path]:
    """Files named, and the files under folders named (sorted, hidden ones skipped); a sample network's posts."""
    out: list[Path] = []
    for s in map(Path, sources):
        if not s.exists():
            raise FileNotFoundError(f"source {s} does not exist")
        if s.is_dir() and (posts := sample_network_posts(s)) is not None:
            out.append(posts)
        elif s.is_dir():
            out.extend(
                p
                for p in sorted(s.rglob("*"))
                if p.is_file() and not any(x.startswith(".") for x in p.relative_to(s).parts)
            )
        else:
            out.append(s)
    return out


def read_units(path: Path, cfg: IngestConfig, name: str | None = None) -> Iterator[Unit]:
    """Every unit of one source file; a stream that breaks off ends with a ``truncated_file`` unit.

    ``name`` is what rejects and the ``source`` column call it (the URL of a file copied from object storage).
    """
    name = name or str(path)
    fmt = sniff_format(path)
    line = 0
    try:
        if fmt == "archive":
            yield from _archive_units(path, name, cfg)
        elif fmt == "parquet":
            yield from _parquet_units(path, name, cfg)
        else:
            with open_decompressed(path) as f:
                if fmt == "tweets_js":
                    account_js = path.with_name("account.js")
                    account = _account_user(account_js.read_bytes()) if account_js.exists() else None
                    units = _tweets_js_units(f, name, cfg, account)
                elif fmt in ("csv", "tsv"):
                    units = _csv_units(f, name, cfg, "," if fmt == "csv" else "\t")
                elif fmt == "text":
                    units = _line_units(f, name, "text", cfg)
                else:
                    units = _json_units(f, name, cfg)
                for u in units:
                    line = u.line
                    yield u
    except READ_ERRORS as e:
        yield bad(name, line + 1, "truncated_file", f"{type(e).__name__}: {e}; the rest of the file is unreadable")
    except csv.Error as e:
        yield bad(name, line + 1, "bad_row", f"CSV: {e}; the rest of the file is unreadable")


def _json_units(f: IO[bytes], name: str, cfg: IngestConfig) -> Iterator[Unit]:
    """JSON lines, or one JSON document (an API response or an array) spread over many lines.

    It is one document when its first line is complete (within the peek) yet not
    JSON by itself, as in pretty-printed output; a first line longer than the
    peek is taken for a long JSON line.
    """
    first = f.peek(1 << 16) if hasattr(f, "peek") else b""
    nl = first.find(b"\n")
    head = first[:nl].strip() if nl >= 0 else b""
    one_document = head[:1] in (b"{", b"[") and not _parses(head)
    if not one_document:
        yield from _line_units(f, name, "json", cfg)
        return
    if head.startswith(b"["):
        yield from iter_json_array(f, name, cfg, skip_prefix=False)
        return
    data = f.read(cfg.max_line_bytes * 64 + 1)  # a single document is read whole
    if len(data) > cfg.max_line_bytes * 64:
        yield bad(name, 1, "field_too_long", "single JSON document over 64 x max_line_bytes; use JSON lines")
        return
    yield Unit(name, 1, "json", data)


def _parses(b: bytes) -> bool:
    try:
        json.loads(b)
        return True
    except ValueError:
        return False
