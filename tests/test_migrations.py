"""Schema migrations on SQLite and PostgreSQL: fresh databases, databases the code before
migrations made, failures that leave nothing behind, and processes migrating at once."""

from __future__ import annotations

import multiprocessing

import pytest
import sqlalchemy as sa

from crawler.errors import StorageError
from storage import migrations
from storage.database import open_engines
from storage.index import Index, sources_table
from storage.leases import leases_table
from storage.outbox import Outbox, outbox_table
from storage.runlog import RunLog, runs_table

RACERS = 4

# The first release's tables, as its create_all made them (portable DDL).
FIRST_RELEASE = [
    "CREATE TABLE sources (id VARCHAR(64) PRIMARY KEY, canonical_url TEXT NOT NULL, "
    "urls JSON NOT NULL, added_at VARCHAR(32) NOT NULL, citations JSON NOT NULL, "
    "last_captured_at VARCHAR(32))",
    "CREATE TABLE captures (id VARCHAR(64) PRIMARY KEY, "
    "source_id VARCHAR(64) NOT NULL REFERENCES sources (id), captured_at VARCHAR(32) NOT NULL, "
    "verdict VARCHAR(32) NOT NULL, reason TEXT, http_status INTEGER, final_url TEXT, "
    "error TEXT, manifest_key TEXT NOT NULL, manifest_sha256 VARCHAR(64) NOT NULL, "
    "text_sha256 VARCHAR(64), artifacts JSON NOT NULL)",
    "INSERT INTO sources VALUES ('s1', 'https://e.org/', '[]', "
    "'2026-01-01T00:00:00.000000Z', '[]', '2026-01-02T00:00:00.000000Z')",
    "INSERT INTO captures VALUES ('c1', 's1', '2026-01-02T00:00:00.000000Z', 'new', NULL, "
    "200, 'https://e.org/', NULL, 'captures/s1/c1.json', '" + "0" * 64 + "', NULL, '{}')",
]


def own_tables(url: str) -> None:
    """The run log and the outbox as they made their own tables (create_all) before
    revision 0005, each with a row: the run log still without its fleet columns."""
    old = sa.MetaData()
    runs = sa.Table(
        "runs",
        old,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("ended_at", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due", sa.Integer, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("errors", sa.JSON, nullable=False),
        sa.Index("ix_runs_started_at", "started_at"),
    )
    outbox = sa.Table(
        "outbox",
        old,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("event", sa.JSON, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.String(32), nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("delivered_at", sa.String(32), nullable=True),
        sa.Index("ix_outbox_due", "delivered_at", "next_attempt_at"),
    )
    engine = sa.create_engine(url)
    old.create_all(engine)
    at = "2026-01-02T00:01:00.000000Z"
    with engine.begin() as conn:
        conn.execute(
            runs.insert().values(
                id="r1", kind="run-once", started_at=at, ended_at=at, status="ok", due=1,
                counts={}, errors=[],
            )
        )  # fmt: skip
        conn.execute(
            outbox.insert().values(
                channel="mail", event={"verdict": "gone"}, created_at=at, attempts=0,
                next_attempt_at=at,
            )
        )  # fmt: skip
    engine.dispose()


def schema(url: str) -> dict:
    """Tables -> sorted column names, index names, and the recorded revision."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        found = {
            table: (
                sorted(c["name"] for c in inspector.get_columns(table)),
                sorted(i["name"] for i in inspector.get_indexes(table)),
            )
            for table in inspector.get_table_names()
        }
        with engine.connect() as conn:
            found["revision"] = migrations.current(conn)
        return found
    finally:
        engine.dispose()


def run_sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def test_a_fresh_database_gets_every_revision(index_url):
    Index(index_url).close()
    got = schema(index_url)
    assert got["revision"] == migrations.HEAD == migrations.alembic_head()
    assert {"sources", "captures", "leases", "runs", "outbox", "alembic_version"} <= set(got)
    assert "unreachable_streak" in got["sources"][0]
    assert "ix_sources_next_due_at" in got["sources"][1]
    assert "ix_leases_expires_at" in got["leases"][1]
    assert {"worker", "captures"} <= set(got["runs"][0])
    assert got["outbox"][1] == ["ix_outbox_due"]
    Index(index_url).close()  # opening again changes nothing
    assert schema(index_url) == got


def test_a_database_made_before_migrations_is_upgraded_in_place(index_url, another_fresh_url):
    run_sql(index_url, *FIRST_RELEASE)
    own_tables(index_url)
    with Index(index_url) as index:
        [row] = index.list_sources()
        assert (row.id, row.last_captured_at, row.removed_at, row.next_due_at) == (
            "s1",
            "2026-01-02T00:00:00.000000Z",
            None,
            None,
        )
        assert index.get_capture("c1").rendering is None
        [run] = RunLog(index).recent()
        assert (run.id, run.status, run.worker, run.captures) == ("r1", "ok", None, None)
        outbox = Outbox(index)
        outbox.add([{"verdict": "changed"}], ["mail"])  # the old table's ids go on
        assert [(r.id, r.event) for r in outbox.all()] == [
            (1, {"verdict": "gone"}),
            (2, {"verdict": "changed"}),
        ]
    # Same schema as a database migrated from empty (columns and indexes), and at head.
    Index(another_fresh_url).close()
    assert schema(index_url) == schema(another_fresh_url)


def test_a_failed_upgrade_leaves_the_database_as_it_was(index_url):
    # captures lacks a column no revision can invent: the upgrade must stop, and the
    # columns it already added to sources must be gone again (one transaction).
    broken = FIRST_RELEASE[1].replace("manifest_key TEXT NOT NULL, ", "")
    broken_insert = FIRST_RELEASE[3].replace("'captures/s1/c1.json', ", "")
    run_sql(index_url, FIRST_RELEASE[0], broken, FIRST_RELEASE[2], broken_insert)
    before = schema(index_url)
    with pytest.raises(StorageError, match="captures lacks column manifest_key"):
        Index(index_url)
    assert schema(index_url) == before
    assert before["revision"] is None


def test_a_database_from_a_newer_citearchive_is_refused(index_url):
    Index(index_url).close()
    run_sql(index_url, "UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(StorageError, match=r"revision 0099.*upgrade citearchive"):
        Index(index_url)


def race(target, arg) -> list[str]:
    """RACERS forked processes run ``target(arg, barrier, results)`` together; their outcomes."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(RACERS), context.Queue()
    procs = [context.Process(target=target, args=(arg, barrier, results)) for _ in range(RACERS)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    return outcomes


def _open(url, barrier, results):
    barrier.wait(timeout=60)
    try:
        Index(url).close()
        results.put("ok")
    except Exception as exc:  # reported to the test, which prints it
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_fresh_database_at_once_migrate_it_once(index_url):
    assert race(_open, index_url) == ["ok"] * RACERS
    assert schema(index_url)["revision"] == migrations.HEAD


@pytest.fixture
def another_fresh_url(index_url, tmp_path, request):
    if index_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/another.sqlite"
    return request.getfixturevalue("pg_server").create_database()


def test_the_revisions_make_the_tables_the_code_queries(index_url):
    """Every table the code declares (columns, types, nullability, indexes) is what the
    revisions made: a change on one side without the other fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    Index(index_url).close()
    declared = [t.metadata for t in (sources_table, leases_table, runs_table, outbox_table)]
    engine = sa.create_engine(index_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            for metadata in declared:
                # Each declaration covers its own tables; the others' show as "extra".
                diffs = [
                    diff
                    for diff in compare_metadata(context, metadata)
                    if not (isinstance(diff, tuple) and diff[0] == "remove_table")
                    and not (
                        isinstance(diff, tuple)
                        and diff[0] == "remove_index"
                        and diff[1].table.name not in metadata.tables
                    )
                ]
                assert diffs == [], sorted(metadata.tables)
    finally:
        engine.dispose()


def _connect(path: str, barrier, results) -> None:
    engine, _ = open_engines(sa.make_url(f"sqlite:///{path}"))
    barrier.wait(timeout=60)
    try:
        with engine.connect() as conn:
            results.put(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
        engine.dispose()
    except Exception as exc:  # reported to the test, which prints it
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_connecting_to_a_fresh_sqlite_file_at_once_all_get_wal(tmp_path):
    """SQLite answers "locked" at once, without its busy handler, to a WAL switch racing
    other connections: 1 round in 6 failed before the retry. 20 rounds of 4."""
    for n in range(20):
        assert race(_connect, str(tmp_path / f"fresh{n}.sqlite")) == ["wal"] * RACERS, n
