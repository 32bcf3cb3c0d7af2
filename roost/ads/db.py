"""Where the ads store keeps its rows: a SQLite file (embedded default) or a PostgreSQL server.

:class:`roost.ads.store.AdStore` writes its SQL once, with ``?`` placeholders and
the syntax both dialects share (``ON CONFLICT`` upserts, ``CAST``, ``LOWER``);
a backend here supplies what differs:

- connections: SQLite, one file handle per thread; PostgreSQL, a pool
  (psycopg_pool, :class:`PgPoolConfig`) of autocommit connections shared by the
  replica's threads: a read borrows one for its statement, a transaction for its
  length, so a replica holds at most ``max_size`` server connections however many
  request threads it runs (PostgreSQL's are processes, and its ``max_connections``
  is shared by every replica); rows answer both ``row[0]`` and ``row["name"]``;
- transactions: SQLite takes the whole database's write lock up front
  (``BEGIN IMMEDIATE``); PostgreSQL runs ``BEGIN`` and the store then locks the
  campaign rows it will charge (:meth:`lock_campaigns`, ``SELECT ... FOR UPDATE``
  in id order, so two transactions never wait on each other in a cycle). Either
  way a budget check and the charge it allows happen under one lock, whichever
  process or replica runs them;
- the schema, in :mod:`roost.ads.migrations` (DDL is where the dialects differ most);
- durability (:data:`DURABILITY`). With WAL, SQLite's ``synchronous=NORMAL`` already keeps
  every acknowledged impression and click through a SIGKILL of the server: the commit is
  in the OS page cache before the answer goes out; only an OS crash or power cut can lose
  the last commits. ``FULL`` also survives those, at one fsync per decision (~10 ms on our
  disks, half the latency budget), so the server uses ``NORMAL`` (durability "process")
  unless told "power" (``ROOST_ADS_DURABILITY=power``). PostgreSQL follows the same choice
  through ``synchronous_commit``: "process" turns it off for the replica's connections, so
  an acknowledged event survives the replica's death (SIGKILL, OOM) and is lost only if the
  database server itself crashes within ~0.6 s of it; "power" waits for the server's disk,
  which was half of a decision's database time.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from roost.errors import UserError

# what an acknowledged event must survive -> SQLite's synchronous mode (PostgreSQL's follows it, open_backend)
DURABILITY = {"process": "NORMAL", "power": "FULL"}


def synchronous_for(durability: str) -> str:
    """``process``: acknowledged events survive a crash of the server; ``power``: also an OS crash or power cut."""
    if durability not in DURABILITY:
        raise UserError(f"ads durability must be one of {sorted(DURABILITY)}, got {durability!r}")
    return DURABILITY[durability]


def is_postgres_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """A database URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class SQLiteBackend:
    """One SQLite file in WAL mode; ``synchronous`` is what a commit survives (see roost.ads.store)."""

    dialect = "sqlite"
    embedded = True  # the store brings an embedded database's schema up to date itself

    def __init__(self, path: str | Path, synchronous: str = "FULL", busy_timeout_ms: int = 30_000):
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        # this process's writers queue here rather than in SQLite's busy handler, which sleeps 1, 2, 5, 10 ms...
        # between tries: two serving threads then waited out whole sleeps for a lock held a fraction of a ms
        self._write_lock = threading.Lock()
        self._pid = os.getpid()

    def _after_fork(self) -> None:
        """A forked worker (one serving process of several) opens its own connections: SQLite's may not cross
        a fork, and a lock held by a thread of the parent would never be released here."""
        self._local, self._write_lock, self._pid = threading.local(), threading.Lock(), os.getpid()

    def describe(self) -> str:
        return str(self.path)

    def conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._after_fork()
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_ms / 1000
            )
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the write lock up front, rolls back on error.

        Other processes on the same file still meet in SQLite's lock (its busy handler waits for them)."""
        db = self.conn()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def lock_campaigns(self, db: sqlite3.Connection, ids: Sequence[str]) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's only write lock."""

    def lock_migrations(self, db: sqlite3.Connection) -> None:
        """Nothing to do, for the same reason."""

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """The store's ``?`` placeholders in psycopg's ``%s`` style (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Row(tuple):
    """A result row readable by position and by column name, like ``sqlite3.Row``."""

    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)


def _row_factory(cursor):
    names = [d.name for d in cursor.description or ()]
    return type("Row", (_Row,), {"_index": {n: i for i, n in enumerate(names)}, "__slots__": ()})


class PgConnection:
    """A psycopg connection that takes the store's ``?`` SQL and hands back :class:`_Row` rows."""

    def __init__(self, raw):
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()):
        return self.raw.execute(_pg_sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]):
        cur = self.raw.cursor()
        cur.executemany(_pg_sql(sql), [tuple(r) for r in rows])
        return cur


class _Result:
    """A statement's rows, read whole before its connection goes back to the pool."""

    def __init__(self, cur):
        self.rowcount = cur.rowcount
        self._rows = cur.fetchall() if cur.description is not None else []
        self._next = 0

    def fetchall(self) -> list:
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def __iter__(self) -> Iterator:
        return iter(self.fetchall())


class PgReader:
    """Reads outside a transaction: each statement runs on a connection borrowed from the pool for it."""

    def __init__(self, backend: PostgresBackend):
        self.backend = backend

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Result:
        with self.backend.borrow() as raw:
            return _Result(raw.execute(_pg_sql(sql), tuple(params)))


@dataclass
class PgPoolConfig:
    """How many PostgreSQL connections one replica keeps, and how long a request waits for one.

    ``wait_s`` is also how long a request waits while the database is away before it fails (503 from the
    server); short, so a balancer's health check and a client's request get their answer in time.
    """

    min_size: int = 2
    max_size: int = 8  # two cores serve ~2 statements at once; more connections only queue in PostgreSQL
    wait_s: float = 2.0


# pg_advisory_xact_lock key for schema migrations: two `roost ads migrate` (or replicas) never migrate at once
_MIGRATION_LOCK = 0x726F6F7374  # "roost"


class PostgresBackend:
    """A PostgreSQL database named by a ``postgresql://`` URL (psycopg 3).

    ``connect_timeout`` bounds how long a replica waits for an unreachable
    database before its request fails (and ``/ready`` says not ready).
    """

    dialect = "postgres"
    embedded = False  # migrations run by `roost ads migrate`, never implicitly by a serving replica

    def __init__(
        self, url: str, connect_timeout_s: int = 5, pool: PgPoolConfig | None = None, synchronous_commit: str = "on"
    ):
        import psycopg  # noqa: F401  (fail here, with the URL in hand, if the driver is missing)

        if synchronous_commit not in ("on", "off"):
            raise ValueError(f"synchronous_commit must be on or off, got {synchronous_commit!r}")
        self.url = url
        self.synchronous_commit = synchronous_commit
        self.connect_timeout_s = connect_timeout_s
        self.pool_config = pool or PgPoolConfig()
        self._pool: Any = None
        self._pid = 0
        self._pool_lock = threading.Lock()

    def describe(self) -> str:
        return redact(self.url)

    def _the_pool(self) -> Any:
        """This process's pool, opened on first use (and again in a forked worker: its threads do not cross)."""
        if self._pool is None or self._pid != os.getpid():
            from psycopg_pool import ConnectionPool

            with self._pool_lock:
                if self._pool is None or self._pid != os.getpid():
                    cfg = self.pool_config
                    self._pool = ConnectionPool(
                        self.url,
                        min_size=cfg.min_size,
                        max_size=cfg.max_size,
                        timeout=cfg.wait_s,
                        kwargs={
                            "autocommit": True,
                            "row_factory": _row_factory,
                            "connect_timeout": self.connect_timeout_s,
                            "application_name": "roost-ads",
                            "options": f"-c synchronous_commit={self.synchronous_commit}",
                        },
                        name="roost-ads",
                        open=True,
                    )
                    self._pid = os.getpid()
        return self._pool

    @contextmanager
    def borrow(self) -> Iterator[Any]:
        """A pooled connection for the block; a broken one (server restarted) is discarded on return."""
        from psycopg_pool import PoolTimeout

        try:
            with self._the_pool().connection() as raw:
                yield raw
        except PoolTimeout as e:
            raise PoolTimeout(f"ads database {self.describe()}: {e} (is the server up and reachable?)") from None

    def conn(self) -> PgReader:
        return PgReader(self)

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        with self.borrow() as raw, raw.transaction():
            yield PgConnection(raw)

    def lock_campaigns(self, db: PgConnection, ids: Sequence[str]) -> None:
        """Row locks on these campaigns until commit, taken in id order (no deadlock between two charges).

        A statement of its own, before the store reads the live state: in READ COMMITTED the next statement
        sees everything committed before the lock was granted. (Locking in the read itself would not do:
        PostgreSQL re-reads only the locked row after the wait, and today's spend comes from another table.)
        """
        ids = sorted(set(ids))
        if ids:
            db.execute(
                f"SELECT id FROM campaigns WHERE id IN ({', '.join('?' * len(ids))}) ORDER BY id FOR UPDATE", ids
            ).fetchall()

    def lock_migrations(self, db: PgConnection) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None


Backend = SQLiteBackend | PostgresBackend


def open_backend(target: str | Path, synchronous: str = "FULL", busy_timeout_ms: int = 30_000) -> Backend:
    """A ``postgresql://`` URL, or a SQLite file path.

    ``synchronous`` is SQLite's: NORMAL (a commit survives the death of this process) or FULL / EXTRA (also an
    OS crash). For PostgreSQL the same choice is ``synchronous_commit``: off (the commit is in the server's
    memory when acknowledged, so it survives this replica's death; a crash of the database server itself
    loses the last ~0.6 s of commits, never more than was charged) or on (on the server's disk)."""
    if is_postgres_url(target):
        return PostgresBackend(str(target), synchronous_commit="off" if synchronous.upper() == "NORMAL" else "on")
    return SQLiteBackend(target, synchronous, busy_timeout_ms)
