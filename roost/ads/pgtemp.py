"""A throwaway PostgreSQL server in a temporary folder, for the tests and bench/ads_replicas.py.

``initdb`` and ``pg_ctl`` from Debian's ``postgresql`` package (found on PATH or
in ``/usr/lib/postgresql/*/bin``, where Debian puts them), listening on
127.0.0.1 only, on a free port, trusting local connections. PostgreSQL refuses
to run as root, so as root (CI containers) the folder is given to the
``postgres`` user the package creates and the commands run as that user
(``runuser``). Nothing is downloaded.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


class PostgresMissing(RuntimeError):
    """initdb/pg_ctl are not installed (or cannot run here); the message says why."""


def find_bin_dir() -> Path:
    """The folder with initdb and pg_ctl: PATH first, else Debian's newest /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(on_path):
        return Path(os.path.realpath(on_path[0])).parent
    dirs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0,
    )
    for d in reversed(dirs):
        if Path(d, "initdb").exists() and Path(d, "pg_ctl").exists():
            return Path(d)
    raise PostgresMissing(
        "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin); "
        "install Debian's postgresql package"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgSettings:
    """Server settings; the defaults favour a test's speed (no fsync: the tests kill replicas, not the database)."""

    fsync: bool = False
    max_connections: int = 300
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class PgServer:
    port: int
    user: str = "roost"
    stop_command: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """Stop the server now (immediate shutdown, as a crash would look to its clients); idempotent."""
        subprocess.run(self.stop_command, capture_output=True, timeout=60)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _runner() -> list[str]:
    """The prefix that runs a command as a user PostgreSQL accepts: nothing, or runuser -u postgres as root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresMissing(
            "running as root and there is no 'postgres' user to run PostgreSQL as "
            "(Debian's postgresql package creates it)"
        ) from None
    if not shutil.which("runuser"):
        raise PostgresMissing("running as root and runuser is missing, so PostgreSQL cannot be started as 'postgres'")
    return ["runuser", "-u", "postgres", "--"]


@contextmanager
def temporary_postgres(settings: PgSettings | None = None) -> Iterator[PgServer]:
    """Start a PostgreSQL server in a fresh temporary folder; stop it and remove the folder afterwards."""
    settings = settings or PgSettings()
    bin_dir, run = find_bin_dir(), _runner()
    root = Path(tempfile.mkdtemp(prefix="roost-pg-"))
    if run:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, port = root / "data", free_port()
    server = PgServer(
        port, stop_command=[*run, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
    )
    options = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(root),
        "max_connections": str(settings.max_connections),
        "fsync": "on" if settings.fsync else "off",
        **settings.extra,
    }
    try:
        _check(
            [
                *run,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                server.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            "initdb",
        )
        opts = " ".join(f"-c {k}={v}" for k, v in options.items())
        _check(
            [
                *run,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
            "pg_ctl start",
            log=root / "server.log",
        )
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _check(cmd: list[str], what: str, log: Path | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-2000:]}\n{tail}")
