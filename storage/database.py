"""Opening the index's database: engines, timeouts, and SQLite's write-lock transactions."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def open_engines(url: sa.URL) -> tuple[sa.Engine, sa.Engine | None]:
    """The engine for url, and on SQLite a second one whose transactions lock (else None).

    Raises OSError when a SQLite file's directory cannot be made.
    """
    if url.drivername == "postgresql":  # SQLAlchemy's default driver is psycopg2: not ours
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() != "sqlite":
        return _open_engine(url), None
    if not url.database or url.database == ":memory:":
        return _open_engine(url), None  # private to its connection: nobody to lock out
    _make_sqlite_dir(url.database)
    return _open_engine(url), _open_locking_engine(url)


# PostgreSQL: a dead or unreachable server must be an error, not a hang. libpq settings,
# each overridable in the URL's query (?connect_timeout=3): connecting gives up after
# 10 s; TCP keepalives notice a server gone mid-query in about 25 s; a statement (a lock
# wait included) is cancelled after 5 minutes, longer than `reindex` of 100,000 sources
# needs; a session idle in a transaction (a stopped worker holding row locks) is ended.
_PG_CONNECT_ARGS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "options": "-c statement_timeout=300000 -c idle_in_transaction_session_timeout=300000",
}
# SQLite: how long a writer waits for another's lock before "database is locked".
_SQLITE_BUSY_TIMEOUT_S = 30


def _open_engine(url: sa.URL) -> sa.Engine:
    if url.get_backend_name() == "postgresql":
        connect_args = {k: v for k, v in _PG_CONNECT_ARGS.items() if k not in url.query}
        # pool_pre_ping: a connection the server dropped (a restart) is replaced, not used.
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    # Every SQLite connection waits as long for a lock: a process reading the schema
    # version while another migrates a fresh database (under BEGIN IMMEDIATE) must wait
    # for it, not fail after pysqlite's default 5 s.
    engine = sa.create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _open_locking_engine(url: sa.URL) -> sa.Engine:
    """A second SQLite engine whose transactions begin with BEGIN IMMEDIATE.

    The driver's own transaction handling starts a transaction only at the first write
    and never around DDL; here the driver's is off and each transaction takes the write
    lock first, so what it reads cannot change before it writes.
    """
    engine = sa.create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})

    def connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        _sqlite_pragmas(dbapi_connection, record)

    sa.event.listen(engine, "connect", connect)
    sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (status, web UI) run while a crawl writes; SQLite leaves foreign
    # keys off unless asked.
    cursor = dbapi_connection.cursor()
    try:
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """PRAGMA journal_mode=WAL, retried while the file is locked.

    Switching a fresh file from its rollback journal to WAL needs it alone, and SQLite
    answers "database is locked" at once, without its busy handler, when other processes
    connect at the same moment (4 processes on a fresh file: 10 of 60 tries failed).
    """
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # no event to wait on: SQLite offers none for this lock


def _make_sqlite_dir(database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)
