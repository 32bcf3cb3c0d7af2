"""Where the ads store keeps its rows: a SQLite file (embedded default) or a PostgreSQL server.

:class:`roost.ads.store.AdStore` writes its SQL once, with ``?`` placeholders and
the syntax both dialects share (``ON CONFLICT`` upserts, ``CAST``, ``LOWER``);
a backend here supplies what differs:

- connections: one per thread for both (SQLite: a file handle; PostgreSQL: an
  autocommit psycopg connection, so reads outside a transaction take no locks),
  and rows that answer both ``row[0]`` and ``row["name"]``;
- transactions: SQLite takes the whole database's write lock up front
  (``BEGIN IMMEDIATE``); PostgreSQL runs ``BEGIN`` and the store then locks the
  campaign rows it will charge (:meth:`lock_campaigns`, ``SELECT ... FOR UPDATE``
  in id order, so two transactions never wait on each other in a cycle). Either
  way a budget check and the charge it allows happen under one lock, whichever
  process or replica runs them;
- the schema, in :mod:`roost.ads.migrations` (DDL is where the dialects differ most).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any


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

    def describe(self) -> str:
        return str(self.path)

    def conn(self) -> sqlite3.Connection:
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
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the write lock up front, rolls back on error."""
        db = self.conn()
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


# pg_advisory_xact_lock key for schema migrations: two `roost ads migrate` (or replicas) never migrate at once
_MIGRATION_LOCK = 0x726F6F7374  # "roost"


class PostgresBackend:
    """A PostgreSQL database named by a ``postgresql://`` URL (psycopg 3).

    ``connect_timeout`` bounds how long a replica waits for an unreachable
    database before its request fails (and ``/ready`` says not ready).
    """

    dialect = "postgres"
    embedded = False  # migrations run by `roost ads migrate`, never implicitly by a serving replica

    def __init__(self, url: str, connect_timeout_s: int = 5):
        import psycopg  # noqa: F401  (fail here, with the URL in hand, if the driver is missing)

        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self._local = threading.local()

    def describe(self) -> str:
        return redact(self.url)

    def conn(self) -> PgConnection:
        import psycopg

        db = getattr(self._local, "db", None)
        if db is not None and (db.raw.closed or db.raw.broken):
            db = None  # the server restarted or dropped us: reconnect on this request
        if db is None:
            raw = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=_row_factory,
                connect_timeout=self.connect_timeout_s,
                application_name="roost-ads",
            )
            db = self._local.db = PgConnection(raw)
        return db

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        db = self.conn()
        with db.raw.transaction():
            yield db

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
        db = getattr(self._local, "db", None)
        if db is not None:
            db.raw.close()
            self._local.db = None


Backend = SQLiteBackend | PostgresBackend


def open_backend(target: str | Path, synchronous: str = "FULL", busy_timeout_ms: int = 30_000) -> Backend:
    """A ``postgresql://`` URL, or a SQLite file path (``synchronous`` applies to SQLite only)."""
    if is_postgres_url(target):
        return PostgresBackend(str(target))
    return SQLiteBackend(target, synchronous, busy_timeout_ms)
