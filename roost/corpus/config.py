"""Ingest settings: one dataclass with defaults, loadable from a JSON or TOML file."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from roost.errors import UserError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


@dataclass
class ColumnMap:
    """Which CSV/Parquet column holds each post field. Only ``text`` must exist in the file."""

    id: str = "id"
    text: str = "text"
    author: str = "author_id"
    created_at: str = "created_at"
    reply_to: str = "reply_to"
    conversation: str = "conversation_id"
    moderation: str = "moderation"  # the platform's action on the post (removed, withheld, sensitive; empty: none)


@dataclass
class IngestConfig:
    # normalization
    urls: Literal["keep", "placeholder"] = "keep"  # placeholder: replace with <|url|>
    mentions: Literal["keep", "placeholder"] = "keep"  # placeholder: replace with <|mention|>
    scrub_pii: bool = True  # emails, phone numbers -> placeholders
    # filters (each counted under its own reason in the manifest)
    min_chars: int = 3  # shorter normalized texts are dropped as too_short
    drop_retweets: bool = True
    drop_spam: bool = True
    spam_max_hashtags: int = 10
    spam_max_mentions: int = 10
    spam_max_urls: int = 4
    spam_learned: bool = True  # also the learned filter (roost.corpus.spam) at run end
    spam_model: str | None = None  # its model JSON; None: the one roost ships
    languages: list[str] | None = None  # ISO 639-1 codes to keep; None keeps all
    # language identification: "auto" trusts a record's own `lang` field (Twitter's identifier)
    # and identifies the rest; "detect" always identifies
    lang_source: Literal["auto", "detect", "off"] = "auto"
    lang_model: Literal["fasttext", "lingua"] = "fasttext"  # fastText lid.176: ~20x faster than lingua
    lang_accuracy: Literal["low", "high"] = "low"  # lingua only; high: better on short texts, ~1 GiB of models
    lang_candidates: list[str] | None = None  # ISO 639-1 codes the model chooses among; None: all it knows
    # (for lingua a short list is ~10x faster and more accurate)
    dedup_exact: bool = True
    dedup_near: bool = True
    near_dup_threshold: float = 0.8  # Jaccard similarity of word shingles
    num_perm: int = 128
    shingle_words: int = 3
    minhash_seed: int = 1
    # malformed-record limits
    max_field_chars: int = 25_000
    max_line_bytes: int = 1 << 20
    max_rejects_logged: int = 10_000  # per run; all are counted
    # CSV / Parquet
    columns: ColumnMap = field(default_factory=ColumnMap)
    # execution
    workers: int = 0  # 0: one per CPU core (max 4); 1: in-process
    batch_size: int = 4096
    rows_per_shard: int = 500_000

    def __post_init__(self) -> None:
        if isinstance(self.columns, dict):
            self.columns = ColumnMap(**self.columns)
        checks = [
            (self.urls in ("keep", "placeholder"), "urls must be 'keep' or 'placeholder'"),
            (self.mentions in ("keep", "placeholder"), "mentions must be 'keep' or 'placeholder'"),
            (self.lang_source in ("auto", "detect", "off"), "lang_source must be 'auto', 'detect' or 'off'"),
            (self.lang_model in ("fasttext", "lingua"), "lang_model must be 'fasttext' or 'lingua'"),
            (self.lang_accuracy in ("low", "high"), "lang_accuracy must be 'low' or 'high'"),
            (0.0 < self.near_dup_threshold <= 1.0, "near_dup_threshold must be in (0, 1]"),
            (self.num_perm >= 16, "num_perm must be >= 16"),
            (self.shingle_words >= 1, "shingle_words must be >= 1"),
            (self.min_chars >= 0, "min_chars must be >= 0"),
            (self.batch_size >= 1 and self.rows_per_shard >= 1, "batch_size and rows_per_shard must be >= 1"),
            (self.workers >= 0, "workers must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(f"ingest config: {msg}")
        if self.languages is not None:
            self.languages = [str(x).lower() for x in self.languages]
        if self.lang_candidates is not None:
            self.lang_candidates = [str(x).lower() for x in self.lang_candidates]
            if self.lang_model == "lingua":
                from lingua import IsoCode639_1

                unknown = [c for c in self.lang_candidates if not hasattr(IsoCode639_1, c.upper())]
            else:
                from roost.corpus.filters import fasttext_languages

                unknown = sorted(set(self.lang_candidates) - fasttext_languages())
            if unknown:
                raise UserError(f"ingest config: lang_candidates: {self.lang_model} does not know {', '.join(unknown)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _refuse_unknown(d: dict, cls: type, where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")


def config_from_dict(d: dict, where: str = "ingest config") -> IngestConfig:
    """An IngestConfig from a plain dict; unknown keys (also under ``columns``) are refused."""
    if not isinstance(d, dict):
        raise UserError(f"{where}: expected a table of settings, got {type(d).__name__}")  # noqa: TRY004 - user input
    d = dict(d.get("ingest", d)) if set(d) == {"ingest"} else dict(d)
    _refuse_unknown(d, IngestConfig, where)
    if "columns" in d:
        if not isinstance(d["columns"], dict):
            raise UserError(f"{where}: columns must be a table of field -> column name")
        _refuse_unknown(d["columns"], ColumnMap, f"{where} [columns]")
    try:
        return IngestConfig(**d)
    except TypeError as e:
        raise UserError(f"{where}: {e}") from None


def load_config(path: str | Path | None) -> IngestConfig:
    """Read ``.json`` or ``.toml`` settings (optionally under an ``[ingest]`` table)."""
    if path is None:
        return IngestConfig()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"config file {path}: cannot parse: {e}") from None
    return config_from_dict(data, where=f"config file {path}")
