"""A real PostgreSQL 15 for tests and the bench: Debian's server on a free loopback port.

initdb into a temporary directory, trust authentication on 127.0.0.1 only, durability off
(fsync, synchronous_commit: a test database needs none). PostgreSQL refuses to run as
root, so as root the server runs as ``nobody`` (data and socket directories chowned).
``pg_ctl -w`` waits for the server itself, so no polling here.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
USER = "citearchive"
START_TIMEOUT_S = 60
_SETTINGS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=200 -c shared_buffers=64MB"
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it, as with port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class PgServer:
    """One PostgreSQL cluster; ``url(db)``, ``create_database()``, ``restart()``, ``stop()``."""

    def __init__(self, workdir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.sockets = workdir / "sockets"
        self.log = workdir / "postgres.log"
        self.host = host
        self.port = port or free_port(host)
        self.running = False

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of one database of this server."""
        return f"postgresql+psycopg://{USER}@{self.host}:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = START_TIMEOUT_S + 30) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse root
            command = ["runuser", "-u", "nobody", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip()}\n{tail}")

    def init(self) -> None:
        if not (PG_BIN / "initdb").is_file():
            raise RuntimeError(f"PostgreSQL 15 is not installed ({PG_BIN}): run `make services`")
        self.sockets.mkdir()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in (self.workdir, self.sockets):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses={self.host} -k {self.sockets} {_SETTINGS}"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", str(START_TIMEOUT_S), "start",
        )  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Stop at once (fast shutdown: open connections are cut)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False

    def restart(self) -> None:
        """Stop and start again on the same port; the data stays, every connection is cut."""
        self.stop()
        self.start()

    def admin(self) -> psycopg.Connection:
        """An autocommit connection for setup, independent of the code under test."""
        return psycopg.connect(
            host=self.host, port=self.port, user=USER, dbname="postgres",
            autocommit=True, connect_timeout=10,
        )  # fmt: skip

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = name or f"t_{secrets.token_hex(6)}"
        with self.admin() as conn:  # FILE_COPY: a small database, copied faster than logged
            conn.execute(f'CREATE DATABASE "{name}" STRATEGY = FILE_COPY')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running_pg_server(host: str = "127.0.0.1", port: int = 0) -> Iterator[PgServer]:
    """A started PgServer in its own temporary directory, stopped and removed after."""
    # Not under pytest's tmp_path: its parents are 0700 root, and the server runs as nobody.
    workdir = Path(tempfile.mkdtemp(prefix="citearchive-pg-"))
    server = PgServer(workdir, host=host, port=port)
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL 15 server on loopback, shared by the whole session."""
    with running_pg_server() as server:
        server.create_database("citearchive")
        yield server


@pytest.fixture(scope="session")
def pg_url(pg_server: PgServer) -> str:
    """URL of the session's shared database ``citearchive``."""
    return pg_server.url("citearchive")


@pytest.fixture
def pg_index_url(pg_server: PgServer) -> str:
    """URL of a fresh empty database for this test (the server restarted if a test stopped it).

    Not dropped after: the whole cluster goes at the end of the session, and a drop would
    have to wait for the test's connections.
    """
    if not pg_server.running:
        pg_server.start()
    return pg_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty index, once per backend: a SQLite file, a fresh PostgreSQL database.

    Parametrize it indirectly with "sqlite" or "postgresql" to choose.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/index.sqlite"
    # Looked up lazily so SQLite-only runs never start PostgreSQL.
    return request.getfixturevalue("pg_index_url")
