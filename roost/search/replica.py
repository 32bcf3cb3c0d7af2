"""A replica of one partition as the front sees it: an index in this process, or a partition server.

Both take the same calls (:class:`roost.search.front.Partition`). A write carries
the front's sequence number; the replica records the last one it applied in its
doc store, so after a restart it says where it stopped and the front replays the
rest from its write log (a write seen twice is applied once).
"""

from __future__ import annotations

import threading
from urllib.parse import quote

import httpx
import numpy as np

from roost.search.dfs import TermStats
from roost.search.engine import Candidates, QueryError, SearchIndex, SearchRequest
from roost.search.wire import candidates_from_dict, dumps, loads, post_from_dict, post_to_dict, request_to_dict

APPLIED = "applied_seq"


class PartitionError(RuntimeError):
    """A partition (replica) could not answer: down, timed out, or failed."""


class LocalPartition:
    """A partition's index opened in this process (by ``roost serve`` on a partitioned index, or by a
    partition server)."""

    def __init__(self, index: SearchIndex):
        self.index = index
        self._lock = threading.Lock()

    def term_stats(self, terms: list[str]) -> TermStats:
        return self.index.lexical.term_stats(terms)

    def candidates(self, req: SearchRequest, qvec: np.ndarray | None, stats: TermStats | None) -> Candidates:
        req.validate()
        self.index.check_mode(req.mode)
        return self.index.candidates(req, qvec, stats)

    def applied(self) -> int:
        return int(self.index.docs.meta(APPLIED) or 0)

    def has_author(self, author_id: str) -> bool:
        return self.index.docs.has_author(author_id)

    def close(self) -> None:
        self.index.close()

    def apply(self, seq: int | None, op: str, payload: dict) -> dict:
        """Apply one write (``add`` posts or ``delete`` an id); a ``seq`` at or below the applied one is a
        repeat and changes nothing."""
        with self._lock:
            if seq is not None and seq <= self.applied():
                return {"applied": self.applied(), "added": [], "deleted": False, "repeat": True}
            if op == "add":
                posts = [post_from_dict({**d, "key": -1}) for d in payload["posts"]]
                result = {"added": [post_to_dict(p) for p in self.index.add(posts)]}
            elif op == "delete":
                result = {"deleted": self.index.delete(str(payload["id"]))}
            else:
                raise ValueError(f"unknown write {op!r}; use add or delete")
            if seq is not None:
                self.index.docs.set_meta(APPLIED, str(seq))
            return {"applied": self.applied(), "added": [], "deleted": False, **result}


class RemotePartition:
    """A partition server (``roost serve-partition``) over HTTP."""

    def __init__(self, url: str, *, key: str | None = None, timeout_s: float = 2.0):
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def __repr__(self) -> str:
        return f"RemotePartition({self.url})"

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            content = None if body is None else dumps(body)
            headers = {"Content-Type": "application/json"} if body is not None else None
            r = self._http.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as e:
            raise PartitionError(f"{self.url}: {type(e).__name__}: {e}") from None
        if r.status_code == 400:
            err = loads(r.content).get("error", {})
            raise QueryError(err.get("param") or "q", err.get("message", r.text))
        if r.status_code != 200:
            raise PartitionError(f"{self.url}{path} answered {r.status_code}: {r.text[:200]}")
        return loads(r.content)

    def term_stats(self, terms: list[str]) -> TermStats:
        return TermStats.from_dict(self._call("POST", "/partition/stats", {"terms": terms}))

    def candidates(self, req: SearchRequest, qvec: np.ndarray | None, stats: TermStats | None) -> Candidates:
        body = {
            "request": request_to_dict(req),
            "qvec": None if qvec is None else np.asarray(qvec, dtype=np.float32),
            "stats": None if stats is None else stats.to_dict(),
        }
        return candidates_from_dict(self._call("POST", "/partition/candidates", body))

    def applied(self) -> int:
        return int(self._call("GET", "/partition/health")["applied"])

    def has_author(self, author_id: str) -> bool:
        return bool(self._call("GET", f"/partition/authors/{quote(author_id, safe='')}")["known"])

    def apply(self, seq: int | None, op: str, payload: dict) -> dict:
        return self._call("POST", "/partition/apply", {"seq": seq, "op": op, "payload": payload})

    def close(self) -> None:
        self._http.close()
