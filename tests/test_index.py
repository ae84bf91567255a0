"""The SQL index: queries, idempotent recording, and rebuilding from the archive alone.

Every test runs on SQLite and on PostgreSQL (tests/pgserver.py); those that read an
archive run on both stores with SQLite, and on the local folder with PostgreSQL (the
database does not see which store the archive came from).
"""

from __future__ import annotations

import hashlib
import socket
import sqlite3
from datetime import UTC, datetime, timedelta

import pgserver
import psycopg
import pytest
import sqlalchemy as sa
from cliutil import run_cli, write_config

from crawler.errors import ConfigError, IntegrityError, StorageError
from storage.archive import Archive, StoredManifest
from storage.ids import source_id
from storage.index import CaptureRow, Index, SourceRow
from storage.objectstore import open_store

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)

BACKENDS = pytest.mark.parametrize(
    ("index_url", "store_url"),
    [("sqlite", "file"), ("sqlite", "s3"), ("postgresql", "file")],
    ids=["sqlite-file", "sqlite-s3", "postgresql-file"],
    indirect=True,
)


def source_record(url: str, added_at: str, *documents: str) -> dict:
    return {
        "id": source_id(url),
        "canonical_url": url,
        "urls": [url, url.replace("https://", "http://")],
        "added_at": added_at,
        "citations": [{"document": d, "context": f"cited in {d}"} for d in documents],
    }


def capture(
    archive: Archive, source: dict, captured_at: str, verdict: str, **fields
) -> StoredManifest:
    """Store a capture the way the crawler does: blobs first, then the manifest."""
    text = f"{source['canonical_url']} at {captured_at}".encode()
    text_ref = archive.put_blob(text)
    dom_ref = archive.put_blob(b"<p>" + text + b"</p>")
    manifest = {
        "id": hashlib.sha256(f"{source['id']} {captured_at}".encode()).hexdigest()[:16],
        "source_id": source["id"],
        "captured_at": captured_at,
        "url": source["canonical_url"],
        "verdict": verdict,
        "reason": None,
        "http_status": 200,
        "final_url": source["canonical_url"],
        "error": None,
        "artifacts": {
            "text": {"sha256": text_ref.sha256, "size": text_ref.size, "media_type": "text/plain"},
            "dom": {"sha256": dom_ref.sha256, "size": dom_ref.size, "media_type": "text/html"},
        },
        "fingerprints": {"text_sha256": text_ref.sha256},
        **fields,
    }
    return archive.write_manifest(manifest)


@pytest.fixture
def index(index_url):
    idx = Index(index_url)
    yield idx
    idx.close()


@pytest.fixture
def another_index_url(index_url, tmp_path, request):
    """A second empty index on the same backend as index_url."""
    if index_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/another.sqlite"
    return request.getfixturevalue("pg_server").create_database()


@pytest.fixture
def populated(store, index):
    """An archive with three sources and five captures, indexed as the crawler would."""
    archive = Archive(store)
    a = source_record("https://news.example/story", "2026-11-01T09:00:00Z", "essay.md")
    b = source_record("https://x.example/status/1", "2026-11-01T08:00:00.5Z", "essay.md", "b.md")
    c = source_record("https://gov.example/alert", "2026-11-02T00:00:00Z")
    for record in (a, b, c):
        archive.put_source(record)
        index.upsert_source(record)
    stored = [
        capture(archive, a, "2026-11-20T10:00:00Z", "new"),
        capture(archive, a, "2026-11-26T10:00:00.250Z", "changed", reason="text edited"),
        capture(archive, b, "2026-11-25T00:00:00Z", "new"),
        capture(
            archive,
            b,
            "2026-11-26T00:00:00Z",
            "unreachable",
            http_status=None,
            final_url=None,
            error="DNS lookup failed",
            artifacts={},
            fingerprints={"text_sha256": None},
        ),
        capture(archive, b, "2026-11-27T11:00:00Z", "gone", http_status=404),
    ]
    for item in stored:
        index.record_capture(item)
    return archive, {"a": a, "b": b, "c": c}, stored


@BACKENDS
def test_sources_are_queryable(populated, index):
    _archive, sources, _stored = populated
    a, b, c = sources["a"], sources["b"], sources["c"]
    row = index.get_source(a["id"])
    assert row == SourceRow(
        id=a["id"],
        canonical_url="https://news.example/story",
        urls=["https://news.example/story", "http://news.example/story"],
        added_at="2026-11-01T09:00:00.000000Z",
        citations=[{"document": "essay.md", "context": "cited in essay.md"}],
        last_captured_at="2026-11-26T10:00:00.250000Z",
    )
    assert index.find_source("https://x.example/status/1").id == b["id"]
    assert index.find_source("https://x.example/status/2") is None
    assert index.get_source("0" * 32) is None
    assert [r.id for r in index.list_sources()] == [b["id"], a["id"], c["id"]]
    assert index.get_source(c["id"]).last_captured_at is None


@BACKENDS
def test_upsert_source_updates_and_keeps_last_capture(populated, index):
    _archive, sources, _stored = populated
    changed = dict(sources["a"], citations=[{"document": "new.md"}], urls=["https://n.example/"])
    index.upsert_source(changed)
    row = index.get_source(changed["id"])
    assert row.citations == [{"document": "new.md"}]
    assert row.urls == ["https://n.example/"]
    assert row.last_captured_at == "2026-11-26T10:00:00.250000Z"
    assert len(index.list_sources()) == 3


@BACKENDS
def test_captures_are_queryable(populated, index):
    _archive, sources, stored = populated
    b = sources["b"]
    rows = index.captures(b["id"])
    assert [r.verdict for r in rows] == ["new", "unreachable", "gone"]
    gone = stored[4]
    assert rows[-1] == CaptureRow(
        id=gone.manifest["id"],
        source_id=b["id"],
        captured_at="2026-11-27T11:00:00.000000Z",
        verdict="gone",
        reason=None,
        http_status=404,
        final_url="https://x.example/status/1",
        error=None,
        manifest_key=gone.key,
        manifest_sha256=gone.sha256,
        text_sha256=gone.manifest["fingerprints"]["text_sha256"],
        artifacts=gone.manifest["artifacts"],
    )
    unreachable = rows[1]
    assert (unreachable.http_status, unreachable.error) == (None, "DNS lookup failed")
    assert (unreachable.artifacts, unreachable.text_sha256) == ({}, None)
    assert index.latest_capture(b["id"]) == rows[-1]
    assert index.get_capture(stored[1].manifest["id"]).reason == "text edited"
    assert index.get_capture("f" * 16) is None
    assert index.latest_capture(sources["c"]["id"]) is None
    assert index.captures(sources["c"]["id"]) == []


@BACKENDS
def test_due_sources(populated, index):
    _archive, sources, _stored = populated
    a, b, c = (sources[k]["id"] for k in "abc")
    # a: last 2026-11-26T10:00:00.25, b: last 2026-11-27T11:00, c: never captured.
    assert [r.id for r in index.due_sources(NOW, timedelta(days=1))] == [c, a]
    assert [r.id for r in index.due_sources(NOW, timedelta(hours=1))] == [c, a, b]
    assert [r.id for r in index.due_sources(NOW, timedelta(days=30))] == [c]
    # The boundary counts as due: last_captured_at <= now - interval.
    exactly = datetime(2026, 11, 27, 11, 0, 0, tzinfo=UTC) + timedelta(hours=6)
    assert [r.id for r in index.due_sources(exactly, timedelta(hours=6))] == [c, a, b]
    just_before = exactly - timedelta(microseconds=1)
    assert [r.id for r in index.due_sources(just_before, timedelta(hours=6))] == [c, a]
    with pytest.raises(ValueError):
        index.due_sources(NOW.replace(tzinfo=None), timedelta(days=1))


@BACKENDS
def test_record_capture_is_idempotent(populated, index):
    _archive, sources, stored = populated
    before = index.dump()
    for item in stored:
        index.record_capture(item)
    # Recording an older capture again must not move last_captured_at backwards.
    index.record_capture(stored[0])
    assert index.dump() == before
    assert len(before["captures"]) == 5
    assert index.get_source(sources["a"]["id"]).last_captured_at == "2026-11-26T10:00:00.250000Z"


@BACKENDS
def test_same_capture_id_with_another_manifest_is_refused(populated, index):
    _archive, _sources, stored = populated
    forged = StoredManifest(stored[0].key, "0" * 64, stored[0].manifest)
    before = index.dump()
    with pytest.raises(IntegrityError):
        index.record_capture(forged)
    assert index.dump() == before


@BACKENDS
def test_capture_of_an_unknown_source_is_refused(store, index):
    archive = Archive(store)
    record = source_record("https://unknown.example/", "2026-11-01T00:00:00Z")
    stored = capture(archive, record, "2026-11-02T00:00:00Z", "new")
    with pytest.raises(StorageError, match="not in the index"):
        index.record_capture(stored)
    assert index.dump() == {"sources": [], "captures": []}


@BACKENDS
def test_rebuild_equals_the_incremental_index(populated, index, another_index_url):
    archive, _sources, _stored = populated
    incremental = index.dump()
    assert len(incremental["sources"]) == 3
    assert len(incremental["captures"]) == 5
    with Index(another_index_url) as fresh:
        assert fresh.rebuild(archive) == (3, 5)
        assert fresh.dump() == incremental
    # Rebuilding in place drops rows the archive does not back.
    index.upsert_source(source_record("https://stray.example/", "2026-01-01T00:00:00Z"))
    assert len(index.dump()["sources"]) == 4
    assert index.rebuild(archive) == (3, 5)
    assert index.dump() == incremental


@BACKENDS
def test_failed_rebuild_keeps_the_old_index(populated, index, store):
    archive, _sources, stored = populated
    before = index.dump()
    store.put(stored[2].key, b"{ not json")
    with pytest.raises(IntegrityError):
        index.rebuild(archive)
    assert index.dump() == before


def test_sqlite_index_creates_its_directory_and_uses_wal(tmp_path):
    path = tmp_path / "deep" / "er" / "index.sqlite"
    with Index(f"sqlite:///{path}") as idx:
        idx.upsert_source(source_record("https://w.example/", "2026-01-01T00:00:00Z"))
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"sources", "captures", "ix_sources_last_captured_at"} <= tables


@BACKENDS
def test_index_survives_reopening(index_url, store):
    url = index_url
    archive = Archive(store)
    record = source_record("https://r.example/", "2026-01-01T00:00:00Z")
    archive.put_source(record)
    with Index(url) as first:
        first.upsert_source(record)
        first.record_capture(capture(archive, record, "2026-01-02T00:00:00Z", "new"))
        dumped = first.dump()
    with Index(url) as second:
        assert second.dump() == dumped


def test_bad_index_urls_are_config_errors():
    with pytest.raises(ConfigError):
        Index("not a database url")
    with pytest.raises(ConfigError) as info:
        Index("nosuchdb://admin:hunter2secret@db.example/citearchive")
    assert "hunter2secret" not in str(info.value)
    assert "db.example" in str(info.value)


def test_unusable_database_is_a_storage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageError):
        Index(f"sqlite:///{blocker}/index.sqlite")  # its directory cannot be created
    with pytest.raises(StorageError, match="cannot create the schema"):
        Index(f"sqlite:///{tmp_path}")  # a directory is not a database file


def test_an_index_from_an_earlier_version_gains_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # the first release's sources table, with one source
        conn.execute(
            sa.text(
                "CREATE TABLE sources (id VARCHAR(64) PRIMARY KEY, canonical_url TEXT NOT NULL, "
                "urls JSON NOT NULL, added_at VARCHAR(32) NOT NULL, citations JSON NOT NULL, "
                "last_captured_at VARCHAR(32))"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO sources VALUES ('s1', 'https://e.org/', '[]', "
                "'2026-01-01T00:00:00.000000Z', '[]', NULL)"
            )
        )
    engine.dispose()
    index = Index(f"sqlite:///{path}")
    [row] = index.list_sources()
    assert (row.id, row.removed_at, row.next_due_at) == ("s1", None, None)
    index.close()


@BACKENDS
def test_status_rows_keep_the_latest_capture_and_the_unreachable_streak(
    store, index, another_index_url
):
    archive = Archive(store)
    record = source_record("https://flaky.example/page", "2026-11-01T00:00:00Z")
    archive.put_source(record)
    index.upsert_source(record)
    times = ["2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z"]
    # Another source answered later: its captures must not count for this one.
    other = source_record("https://steady.example/", "2026-11-01T00:00:01Z")
    archive.put_source(other)
    index.upsert_source(other)
    index.record_capture(capture(archive, other, "2026-11-23T00:00:00Z", "new"))
    stored = [
        capture(archive, record, times[0], "new"),
        capture(archive, record, times[1], "unreachable", http_status=None),
        capture(archive, record, times[2], "unreachable", http_status=None),
    ]
    # Recorded out of order (a rebuild or a late writer): the result must not depend on it.
    for s in (stored[2], stored[0], stored[1]):
        index.record_capture(s)
    row, steady = index.status_rows()
    assert (steady.verdict, steady.unreachable_streak) == ("new", 0)
    assert (row.latest_id, row.verdict) == (stored[2].manifest["id"], "unreachable")
    assert row.captured_at.startswith("2026-11-22T00:00:00")
    assert row.unreachable_streak == 2
    assert row.urls is None  # only asked for with_citations
    with Index(another_index_url) as fresh:
        fresh.rebuild(archive)
        assert fresh.status_rows(with_citations=True) == index.status_rows(with_citations=True)
    index.record_capture(capture(archive, record, "2026-11-23T00:00:00Z", "restored"))
    row, _ = index.status_rows(with_citations=True)
    assert (row.verdict, row.unreachable_streak) == ("restored", 0)
    assert row.urls == record["urls"]


def test_status_rows_list_pending_sources_and_skip_removed_ones(index):
    index.upsert_source(source_record("https://a.example/", "2026-11-01T00:00:00Z"))
    gone = source_record("https://b.example/", "2026-11-02T00:00:00Z")
    index.upsert_source({**gone, "removed_at": "2026-11-03T00:00:00Z"})
    (row,) = index.status_rows()
    assert (row.canonical_url, row.latest_id, row.verdict) == ("https://a.example/", None, None)


def test_status_lines_are_status_rows_columns_in_the_same_order(index):
    """More rows than one streamed chunk; equal added_at times ordered by id."""
    records = [
        source_record(f"https://s{n}.example/", f"2026-11-0{1 + n % 3}T00:00:00Z")
        for n in range(2345)
    ]
    index.upsert_sources(records)
    for n, record in enumerate(records[:40]):
        verdict = ("new", "changed", "unreachable", "gone")[n % 4]
        manifest = {
            "id": f"{n:016x}",
            "source_id": record["id"],
            "captured_at": f"2026-11-2{n % 10}T00:00:00Z",
            "verdict": verdict,
            "reason": f"reason {n}" if n % 3 else "",
            "artifacts": {},
        }
        index.record_capture(StoredManifest(f"captures/{n}.json", "0" * 64, manifest))
    rows = index.status_rows()
    assert [(r.added_at, r.id) for r in rows] == sorted((r.added_at, r.id) for r in rows)
    expected = [
        (r.canonical_url, r.next_due_at, r.unreachable_streak, r.captured_at, r.verdict, r.reason)
        for r in rows
    ]
    assert list(index.status_lines()) == expected
    assert len(expected) == 2345 and sum(1 for e in expected if e[4]) == 40


# PostgreSQL: what the server's absence, silence, slowness and restart do to an Index.


def test_postgresql_errors_name_the_server_but_never_the_password(pg_server):
    port = pgserver.free_port()  # nothing listens there
    url = f"postgresql://citearchive:hunter2secret@127.0.0.1:{port}/db"  # psycopg 3 implied
    with pytest.raises(StorageError) as info:
        Index(url)
    message = str(info.value)
    assert "hunter2secret" not in message
    assert f"127.0.0.1:{port}" in message
    assert "cannot create the schema" in message


def test_a_silent_postgresql_server_is_an_error_not_a_hang():
    with socket.socket() as silent:  # accepts TCP connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(StorageError, match="timeout"):
            Index(f"postgresql+psycopg://citearchive@127.0.0.1:{port}/db?connect_timeout=1")


def test_a_postgresql_statement_stuck_on_a_lock_times_out(pg_server, pg_index_url):
    with Index(pg_index_url) as index, index.engine.connect() as conn:
        # The defaults: a statement gives up after 5 minutes.
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "5min"
    impatient = f"{pg_index_url}?options=-c%20statement_timeout%3D300"
    with Index(impatient) as index, psycopg.connect(pg_index_url.replace("+psycopg", "")) as hog:
        hog.execute("LOCK TABLE sources IN ACCESS EXCLUSIVE MODE")  # held until rollback
        with pytest.raises(StorageError, match="statement timeout"):
            index.list_sources()
        with pytest.raises(StorageError, match=r"cannot read the status.*statement timeout"):
            list(index.status_lines())
        hog.rollback()
        assert index.list_sources() == []  # the next call works


def test_an_index_survives_a_postgresql_restart(pg_server, pg_index_url):
    with Index(pg_index_url) as index:
        index.upsert_source(source_record("https://before.example/", "2026-11-01T00:00:00Z"))
        assert len(index.list_sources()) == 1  # a pooled connection now exists
        pg_server.restart()  # every connection is cut
        index.upsert_source(source_record("https://after.example/", "2026-11-02T00:00:00Z"))
        assert [r.canonical_url for r in index.list_sources()] == [
            "https://before.example/",
            "https://after.example/",
        ]


def test_reindex_rebuilds_a_postgresql_index_from_the_store_alone(pg_index_url, tmp_path):
    store_url = (tmp_path / "store").as_uri()
    archive = Archive(open_store(store_url))
    with Index(f"sqlite:///{tmp_path}/reference.sqlite") as reference:
        for n in range(3):
            record = source_record(f"https://r{n}.example/", f"2026-11-0{n + 1}T00:00:00Z")
            archive.put_source(record)
            reference.upsert_source(record)
            for day in range(n + 1):
                stored = capture(archive, record, f"2026-11-2{day}T00:00:00Z", "new")
                reference.record_capture(stored)
        expected = reference.dump()
    config = write_config(
        tmp_path / "c.toml", store_url, extra=f'[index]\nurl = "{pg_index_url}"\n'
    )
    with Index(pg_index_url) as index:
        index.upsert_source(source_record("https://stray.example/", "2026-01-01T00:00:00Z"))
    result = run_cli(config, "reindex")
    assert result.code == 0, result.err
    assert result.out.strip() == "reindexed 3 sources, 6 captures"
    with Index(pg_index_url) as index:
        assert index.dump() == expected
