"""A replica of one partition as the front sees it: an index in this process, or a partition server.

Both take the same calls (:class:`roost.search.front.Partition`). A write carries
the front's sequence number; the replica records the last one it applied in its
doc store, so after a restart it says where it stopped and the front replays the
rest from its write log (a write seen twice is applied once).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable
from typing import NamedTuple
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

    def candidates(
        self, req: SearchRequest, qvec: np.ndarray | None, stats: TermStats | None, depth: int | None = None
    ) -> Candidates:
        t0 = time.perf_counter()
        req.validate()
        self.index.check_mode(req.mode)
        found = self.index.candidates(req, qvec, stats, depth)
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


class _OneWrite:
    """A request in one write, sent at once.

    http.client writes a request's headers and its body apart: without TCP_NODELAY the body could wait for the
    server's acknowledgement of the headers (in the front's tail latency: p90 2.6 against 1.0 ms), and with it
    the partition server woke twice for every call, once for the headers and once for the body."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]

    def _send_output(self, message_body=None, encode_chunked: bool = False) -> None:
        if not isinstance(message_body, bytes) or encode_chunked:
            return super()._send_output(message_body, encode_chunked)  # type: ignore[misc]
        self._buffer.extend((b"", b""))  # type: ignore[attr-defined]
        head = b"\r\n".join(self._buffer)  # type: ignore[attr-defined]
        del self._buffer[:]  # type: ignore[attr-defined]
        self.send(head + message_body)  # type: ignore[attr-defined]


class _HTTP(_OneWrite, http.client.HTTPConnection):
    pass


class _HTTPS(_OneWrite, http.client.HTTPSConnection):
    pass


class Connections:
    """Keep-alive HTTP connections to one server, one per thread of the front.

    Plain :mod:`http.client`: a query calls every partition, and on this path httpx's
    client spent twice the time of the whole loopback round trip (0.54 ms with
    http.client, 1.18 ms with httpx, against an empty route). A request is sent
    (:meth:`send`) and its answer read later (:meth:`Exchange.result`), so one thread
    can have a request out to every partition at once. A connection the server closed
    while idle is reopened once: the request never reached the server."""

    def __init__(self, url: str, timeout_s: float):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"partition URL {url!r}: use http://HOST:PORT or https://HOST:PORT")
        self._kind = _HTTPS if parts.scheme == "https" else _HTTP
        self._host, self._port, self._prefix = parts.hostname, parts.port, parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        return self.send(method, path, body, headers).result()

    def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Exchange:
        conn = getattr(self._local, "conn", None)
        reused = conn is not None
        if conn is None:
            conn = self._open()
        try:
            conn.request(method, self._prefix + path, body=body, headers=headers)
        except (ConnectionResetError, BrokenPipeError):
            self.drop(conn)
            if not reused:
                raise
            return self.send(method, path, body, headers)  # closed while idle: on a new connection
        except (OSError, http.client.HTTPException):
            self.drop(conn)
            raise
        return Exchange(self, conn, (method, path, body, headers) if reused else None)

    def _open(self) -> http.client.HTTPConnection:
        conn = self._kind(self._host, self._port, timeout=self.timeout_s)
        with self._lock:
            self._all.append(conn)
        self._local.conn = conn
        return conn

    def drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


class Exchange:
    """A request sent on the calling thread's connection, its answer not read yet."""

    def __init__(self, conns: Connections, conn: http.client.HTTPConnection, resend: tuple | None):
        self._conns, self._conn, self._resend = conns, conn, resend  # resend: the request, if the connection was reused

    def result(self, timeout_s: float | None = None) -> tuple[int, bytes]:
        """(status, body), waiting at most ``timeout_s`` (the connection's timeout when None)."""
        conn = self._conn
        try:
            if conn.sock is not None:
                conn.sock.settimeout(self._conns.timeout_s if timeout_s is None else timeout_s)
            r = conn.getresponse()
            status, content = r.status, r.read()
        except http.client.RemoteDisconnected:
            self._conns.drop(conn)
            if self._resend is None:
                raise
            return self._conns.request(*self._resend)  # closed while idle, before it read the request
        except (OSError, http.client.HTTPException):
            self._conns.drop(conn)
            raise
        if conn.sock is not None:
            conn.sock.settimeout(self._conns.timeout_s)
        return status, content

    def abandon(self) -> None:
        """Not read after all: the connection is closed, so its next request does not read this answer."""
        self._conns.drop(self._conn)

    def fileno(self) -> int:
        """The connection's socket, to wait on until the answer arrives (-1 if it is closed)."""
        return self._conn.sock.fileno() if self._conn.sock is not None else -1


class Pending:
    """A call sent to a partition server; :meth:`result` reads and decodes its answer."""

    def __init__(self, partition: RemotePartition, path: str, exchange: Exchange, decode: Callable[[dict], object]):
        self._partition, self._path, self._exchange, self._decode = partition, path, exchange, decode

    def result(self, timeout_s: float | None = None):
        return self._decode(self._partition.answer(self._path, self._exchange, timeout_s))

    def abandon(self) -> None:
        self._exchange.abandon()

    def fileno(self) -> int:
        return self._exchange.fileno()


class Encoded(NamedTuple):
    """A query call as it goes on the wire: the route, the JSON body, and how to read the answer."""

    path: str
    body: bytes
    decode: Callable[[dict], object]


class RemotePartition:
    """A partition server (``roost serve-partition``) over HTTP."""

    def __init__(self, url: str, *, key: str | None = None, timeout_s: float = 2.0):
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = Connections(self.url, timeout_s)

    def __repr__(self) -> str:
        return f"RemotePartition({self.url})"

    def _send(self, method: str, path: str, body: bytes | None = None) -> Exchange:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            return self._http.send(method, path, body, headers)
        except (OSError, http.client.HTTPException) as e:  # refused, reset, timed out
            raise PartitionError(f"{self.url}: {type(e).__name__}: {e}") from None

    def answer(self, path: str, exchange: Exchange, timeout_s: float | None = None) -> dict:
        try:
            status, content = exchange.result(timeout_s)
        except (OSError, http.client.HTTPException) as e:
            raise PartitionError(f"{self.url}: {type(e).__name__}: {e}") from None
        if status == 400:
            err = loads(content).get("error", {})
            raise QueryError(err.get("param") or "q", err.get("message", content.decode(errors="replace")))
        if status != 200:
            raise PartitionError(f"{self.url}{path} answered {status}: {content[:200].decode(errors='replace')}")
        return loads(content)

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        return self.answer(path, self._send(method, path, None if body is None else dumps(body)))

    def begin(self, call: str, *args) -> Pending:
        """Send a query call (``term_stats``, ``vocabulary`` or ``candidates``, with its arguments) and return
        without waiting for the answer."""
        return self.send(self.encode(call, *args))

    def send(self, encoded: Encoded) -> Pending:
        """Send a call :meth:`encode` wrote (the front encodes a query's call once for all partitions)."""
        return Pending(self, encoded.path, self._send("POST", encoded.path, encoded.body), encoded.decode)

    @staticmethod
    def encode(call: str, *args) -> Encoded:
        if call == "term_stats":
            path, body, decode = "/partition/stats", {"terms": args[0]}, TermStats.from_dict
        elif call == "vocabulary":
            path, body, decode = "/partition/vocabulary", {"limit": args[0]}, Vocabulary.from_dict
        elif call == "candidates":
            req, qvec, stats, depth = (*args, None)[:4]
            path, decode = "/partition/candidates", candidates_from_dict
            body = {
                "request": request_to_dict(req),
                "qvec": None if qvec is None else np.asarray(qvec, dtype=np.float32),
                "stats": None if stats is None else stats.to_dict(),
                "depth": depth,
            }
        else:
            raise ValueError(f"unknown partition call {call!r}")
        return Encoded(path, dumps(body), decode)

    def term_stats(self, terms: list[str]) -> TermStats:
        return self.begin("term_stats", terms).result()

    def vocabulary(self, limit: int) -> Vocabulary:
        return self.begin("vocabulary", limit).result()

    def candidates(
        self, req: SearchRequest, qvec: np.ndarray | None, stats: TermStats | None, depth: int | None = None
    ) -> Candidates:
        return self.begin("candidates", req, qvec, stats, depth).result()

    def applied(self) -> int:
        return int(self._call("GET", "/partition/health")["applied"])

    def has_author(self, author_id: str) -> bool:
        return bool(self._call("GET", f"/partition/authors/{quote(author_id, safe='')}")["known"])

    def apply(self, seq: int | None, op: str, payload: dict) -> dict:
        return self._call("POST", "/partition/apply", {"seq": seq, "op": op, "payload": payload})

    def close(self) -> None:
        self._http.close()
