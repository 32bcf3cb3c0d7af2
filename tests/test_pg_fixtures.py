"""A real PostgreSQL server for the tests (roost.ads.pgtemp): one per test session, a fresh database per test.

Outside CI a machine without PostgreSQL skips these tests, saying how to get it;
in CI (``CI`` set) a missing PostgreSQL fails them, since `.ci/run` installs it.
"""

from __future__ import annotations

import itertools
import os

import pytest

from roost.ads.db import PostgresBackend, open_backend
from roost.ads.migrations import migrate_schema
from roost.ads.pgtemp import PgServer, PostgresMissing, find_bin_dir, temporary_postgres

_names = itertools.count()


def require_postgres() -> None:
    """Skip (outside CI) or fail (in CI) when PostgreSQL's programs are not installed."""
    try:
        find_bin_dir()
    except PostgresMissing as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {e} (.ci/run installs it)")
        pytest.skip(f"{e}; these tests run in CI")


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    require_postgres()
    try:
        with temporary_postgres() as server:
            yield server
    except PostgresMissing as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer) -> str:
    """A database at the current schema, copied by each test's fresh database (faster than migrating each)."""
    url = pg_server.create_database("roost_template")
    backend = open_backend(url)
    migrate_schema(backend)
    backend.close()
    return "roost_template"


def fresh_database(server: PgServer, template: str | None = None) -> str:
    """A new database (a copy of ``template`` if given); returns its URL."""
    import psycopg

    name = f"t{os.getpid()}_{next(_names)}"
    with psycopg.connect(server.url(), autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return server.url(name)


@pytest.fixture
def pg_url(pg_server: PgServer, pg_template: str) -> str:
    """A fresh, migrated database for one test."""
    return fresh_database(pg_server, pg_template)


@pytest.fixture
def closes_pools(monkeypatch):
    """Close every PostgreSQL connection pool the test opened when it ends.

    A pool left to the garbage collector may be collected on one of its own
    worker threads, where psycopg_pool's ``__del__`` fails with "cannot join
    current thread", printed into whichever test runs then (a test reading its
    stderr fails).
    """
    opened: dict[int, PostgresBackend] = {}
    the_pool = PostgresBackend._the_pool

    def tracked(self):
        opened[id(self)] = self
        return the_pool(self)

    monkeypatch.setattr(PostgresBackend, "_the_pool", tracked)
    yield
    for backend in opened.values():
        backend.close()
