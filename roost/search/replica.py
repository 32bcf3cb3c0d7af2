"""A replica of one partition as the front sees it: an index in this process, or a partition server.

Both take the same calls (:class:`roost.search.front.Partition`). A write carries
the front's sequence number; the replica records the last one it applied in its
doc store, so after a restart it says where it stopped and the front replays the
rest from its write log (a write seen twice is applied once).
"""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import quote, urlsplit

import numpy as np

from roost.search.dfs import TermStats
from roost.search.engine import Candidates, QueryError, SearchIndex, SearchRequest
from roost.search.term_table import Vocabulary, counts_of
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

    def vocabulary(self, limit: int) -> Vocabulary:
        return Vocabulary(*self.index.lexical.vocabulary(limit))

    def candidates(self, req: SearchRequest, qvec: np.ndarray | None, stats: TermStats | None) -> Candidates:
        t0 = time.perf_counter()
        req.validate()
        self.index.check_mode(req.mode)
        found = self.index.candidates(req, qvec, stats)
        found.took_ms = (time.perf_counter() - t0) * 1000
        return found

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
                return {"applied": self.applied(), "added": [], "deleted": False, "repeat": True, "stats": None}
            if op == "add":
                posts = self.index.add([post_from_dict({**d, "key": -1}) for d in payload["posts"]])
                indexed = self.index.docs.indexed([p.key for p in posts])
                result = {  # what the posts add to the term counts, for the front's table (term_table.py)
                    "added": [post_to_dict(p) for p in posts],
                    "stats": counts_of(list(indexed.values())).to_dict(),
                }
            elif op == "delete":
                result = {"deleted": self.index.delete(str(payload["id"]))}
            else:
                raise ValueError(f"unknown write {op!r}; use add or delete")
            if seq is not None:
                self.index.docs.set_meta(APPLIED, str(seq))
            return {"applied": self.applied(), "added": [], "deleted": False, "stats": None, **result}


class Connections:
    """Keep-alive HTTP connections to one server, one per thread of the front's fan-out.

    Plain :mod:`http.client`: a query calls every partition once or twice, and on this
    path httpx's client spent twice the time of the whole loopback round trip (0.54 ms
    with http.client, 1.18 ms with httpx, against an empty route). A connection the
    server closed while idle is reopened once; the request never reached the server."""

    def __init__(self, url: str, timeout_s: float):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"partition URL {url!r}: use http://HOST:PORT or https://HOST:PORT")
        self._kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._host, self._port, self._prefix = parts.hostname, parts.port, parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in range(2):
            conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = self._kind(self._host, self._port, timeout=self.timeout_s)
                with self._lock:
                    self._all.append(conn)
                self._local.conn = conn
            try:
                conn.request(method, self._prefix + path, body=body, headers=headers)
                r = conn.getresponse()
                return r.status, r.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._drop(conn)
                if not reused or attempt:
                    raise
            except (OSError, http.client.HTTPException):
                self._drop(conn)
                raise
        raise AssertionError("unreachable")

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.conn = None
        with self._lock:
            self._all.remove(conn)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


class RemotePartition:
    """A partition server (``roost serve-partition``) over HTTP."""

    def __init__(self, url: str, *, key: str | None = None, timeout_s: float = 2.0):
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = Connections(self.url, timeout_s)

    def __repr__(self) -> str:
        return f"RemotePartition({self.url})"

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            status, content = self._http.request(method, path, None if body is None else dumps(body), headers)
        except (OSError, http.client.HTTPException) as e:  # refused, reset, timed out
            raise PartitionError(f"{self.url}: {type(e).__name__}: {e}") from None
        if status == 400:
            err = loads(content).get("error", {})
            raise QueryError(err.get("param") or "q", err.get("message", content.decode(errors="replace")))
        if status != 200:
            raise PartitionError(f"{self.url}{path} answered {status}: {content[:200].decode(errors='replace')}")
        return loads(content)

    def term_stats(self, terms: list[str]) -> TermStats:
        return TermStats.from_dict(self._call("POST", "/partition/stats", {"terms": terms}))

    def vocabulary(self, limit: int) -> Vocabulary:
        return Vocabulary.from_dict(self._call("POST", "/partition/vocabulary", {"limit": limit}))

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
