"""Posts sent to ``POST /admin/posts``: normalized and filtered exactly as ingest treats the corpus.

The ingest settings come from the corpus manifest (what the corpus was made
with), and the work is done by ingest's own functions, so a post added live
reads the same as one ingested. Corpus-wide deduplication is not applied here:
it needs the whole corpus; a repeated id replaces the earlier post instead.
"""

from __future__ import annotations

from datetime import datetime, timezone

from roost.corpus.config import IngestConfig, config_from_dict
from roost.corpus.filters import detect_languages, is_spam, source_lang
from roost.corpus.normalize import normalize_post
from roost.search.build import engagement
from roost.search.docstore import Post
from roost.workspace import Workspace


class PostPreparer:
    """``(raw post dicts) -> (accepted posts, rejected [{"id", "reason"}])`` under one ingest config."""

    def __init__(self, cfg: IngestConfig | None = None):
        self.cfg = cfg or IngestConfig()

    @classmethod
    def for_workspace(cls, ws: Workspace) -> PostPreparer:
        manifest = ws.read_manifest("corpus") or {}
        cfg = manifest.get("config")
        return cls(config_from_dict(cfg, f"{ws.corpus}/manifest.json config") if cfg else None)

    def warm_up(self) -> None:
        """Load the language identifier now (seconds), so the first live post is not the one that waits."""
        if self.cfg.lang_source != "off":
            detect_languages(["warming up the language identifier"], self.cfg.lang_accuracy)

    def _reason(self, text: str):
        cfg = self.cfg
        n = normalize_post(text, cfg.urls, cfg.mentions, cfg.scrub_pii)
        if not n.text:
            return n, "empty"
        if len(n.text) < cfg.min_chars:
            return n, "too_short"
        if cfg.drop_spam and is_spam(n, cfg):
            return n, "spam"
        return n, None

    def _language(self, given: str | None, text: str) -> str:
        cfg = self.cfg
        lang = source_lang(given) if cfg.lang_source == "auto" else None
        if lang is None and cfg.lang_source != "off":
            lang = detect_languages([text], cfg.lang_accuracy)[0]
        return lang or "und"

    def __call__(self, raw: list[dict]) -> tuple[list[Post], list[dict]]:
        accepted: list[Post] = []
        rejected: list[dict] = []
        seen: set[str] = set()
        for r in raw:
            if r["id"] in seen:
                rejected.append({"id": r["id"], "reason": "duplicate_id_in_request"})
                continue
            seen.add(r["id"])
            n, reason = self._reason(r["text"])
            lang = None if reason else self._language(r.get("lang"), n.text)
            if reason is None and self.cfg.languages is not None and lang not in self.cfg.languages:
                reason = "language"
            if reason:
                rejected.append({"id": r["id"], "reason": reason})
                continue
            created = r.get("created_at") or datetime.now(timezone.utc)
            if created.tzinfo is None:
                created = created.replace(tzinfo=timezone.utc)
            tags = r.get("hashtags")
            accepted.append(
                Post(
                    id=r["id"],
                    text=n.text,
                    author_id=r.get("author_id"),
                    created_at=created.timestamp(),
                    lang=lang,
                    hashtags=[t.lstrip("#").lower() for t in tags] if tags is not None else n.hashtags,
                    engagement=engagement(r.get("like_count"), r.get("retweet_count"), r.get("reply_count")),
                )
            )
        return accepted, rejected
