"""The index: a queryable copy of sources and captures in SQL, rebuildable from the archive.

SQLAlchemy Core with portable SQL only, so the same code runs on SQLite (default) and
PostgreSQL (fleet mode). Timestamps are stored as normalised RFC 3339 UTC text
("2026-11-27T14:15:00.123456Z"): fixed width, so text order is time order everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from crawler.errors import ConfigError, IntegrityError, StorageError
from storage import migrations
from storage.archive import Archive, StoredManifest
from storage.database import open_engines
from storage.ids import format_rfc3339
from storage.indextables import (
    SOURCE_ROW_COLUMNS,
    CaptureRow,
    SourceRow,
    StatusLine,
    StatusRow,
    capture_row,
    capture_values,
    captures_table,
    derived,
    due_condition,
    refresh_derived,
    source_rows,
    source_values,
    sources_table,
)
from storage.objectstore import redact_url

# Re-exported: callers import the row types and tables from here.
__all__ = [
    "CaptureRow",
    "Index",
    "SourceRow",
    "StatusLine",
    "StatusRow",
    "captures_table",
    "sources_table",
]

_sources, _captures = sources_table, captures_table

_T = TypeVar("_T")
# Rows per chunk when streaming a listing from PostgreSQL: small enough that the client
# formats while the server reads on, large enough that per-chunk costs vanish.
_STREAM_ROWS = 1000


class Index:
    """Sources and captures in a SQL database (SQLAlchemy URL); the schema is migrated on open."""

    def __init__(self, url: str) -> None:
        try:
            parsed = sa.engine.make_url(url)
        except sa_exc.ArgumentError as exc:
            raise ConfigError(f"malformed index url {redact_url(url)!r}") from exc
        self.url = parsed.render_as_string(hide_password=True)
        try:
            self._engine, self._locking = open_engines(parsed)
        except (sa_exc.ArgumentError, ImportError) as exc:
            raise ConfigError(f"cannot open index {self.url}: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"cannot create the directory of index {self.url}: {exc}") from exc
        try:
            with self._errors("create the schema"):
                migrations.upgrade(self._engine, self._locking or self._engine)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release every connection."""
        self._engine.dispose()
        if self._locking is not None:
            self._locking.dispose()

    @property
    def dialect(self) -> str:
        """The database's kind: "sqlite" or "postgresql"."""
        return self._engine.dialect.name

    @contextmanager
    def locked(self, action: str) -> Iterator[sa.Connection]:
        """A transaction that holds SQLite's write lock from its first statement.

        On SQLite two such transactions run one after the other (BEGIN IMMEDIATE), so a
        read-then-write in one cannot interleave with another; on PostgreSQL it is a plain
        transaction, and the caller locks the rows it decides on (FOR UPDATE).
        """
        with self._errors(action), (self._locking or self._engine).begin() as conn:
            yield conn

    @contextmanager
    def reading(self, action: str) -> Iterator[sa.Connection]:
        """A connection for reads; database errors become StorageError naming ``action``."""
        with self._errors(action), self._engine.connect() as conn:
            yield conn

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError(f"index {self.url}: cannot {action}: {_reason(exc)}") from exc

    def _write(self, action: str, work: Callable[[sa.Connection], _T]) -> _T:
        """Run work in a transaction; retry once if a concurrent writer inserted the same row.

        Portable upsert: select-then-insert loses a race by a unique violation, and the
        second pass then sees the other writer's row.
        """
        with self._errors(action):
            try:
                with self._engine.begin() as conn:
                    return work(conn)
            except sa_exc.IntegrityError:
                with self._engine.begin() as conn:
                    return work(conn)

    # Sources

    def upsert_source(self, source: dict) -> None:
        """Insert or update a source from its archive record; last_captured_at is kept."""
        self.upsert_sources([source])

    def upsert_sources(self, sources: list[dict]) -> None:
        """Insert or update many sources in one transaction (an import of 10,000 links)."""
        rows = [source_values(source) for source in sources]

        def work(conn: sa.Connection) -> None:
            for values in rows:
                found = conn.execute(
                    sa.select(_sources.c.id).where(_sources.c.id == values["id"])
                ).first()
                if found is None:
                    conn.execute(sa.insert(_sources).values(values))
                else:
                    conn.execute(
                        sa.update(_sources).where(_sources.c.id == values["id"]).values(values)
                    )

        self._write(f"store {len(rows)} source(s)", work)

    def _select_sources(self, action: str, query: sa.Select) -> list[SourceRow]:
        with self._errors(action), self._engine.connect() as conn:
            return source_rows(conn.execute(query).all())

    def get_source(self, source_id: str) -> SourceRow | None:
        """The source with this id, or None."""
        rows = self._select_sources(
            "read a source", sa.select(*SOURCE_ROW_COLUMNS).where(_sources.c.id == source_id)
        )
        return rows[0] if rows else None

    def find_source(self, canonical_url: str) -> SourceRow | None:
        """The source with this canonical URL, or None."""
        query = (
            sa.select(*SOURCE_ROW_COLUMNS)
            .where(_sources.c.canonical_url == canonical_url)
            .order_by(_sources.c.id)
            .limit(1)
        )
        rows = self._select_sources("find a source", query)
        return rows[0] if rows else None

    def list_sources(self) -> list[SourceRow]:
        """Every registered (not removed) source, ordered by added_at, then id."""
        query = (
            sa.select(*SOURCE_ROW_COLUMNS)
            .where(_sources.c.removed_at.is_(None))
            .order_by(_sources.c.added_at, _sources.c.id)
        )
        return self._select_sources("list sources", query)

    def due_sources(
        self, now: datetime, interval: timedelta, limit: int | None = None
    ) -> list[SourceRow]:
        """Sources due at ``now``: their next_due_at has come, or, without one, they were
        never captured or last captured at or before now - interval.

        Never-captured sources come first, then the longest-waiting ones; at most ``limit``.
        """
        last = _sources.c.last_captured_at
        query = (
            sa.select(*SOURCE_ROW_COLUMNS)
            .where(due_condition(now, interval))
            .order_by(
                sa.case((last.is_(None), 0), else_=1), last, _sources.c.added_at, _sources.c.id
            )
            .limit(limit)
        )
        return self._select_sources("select due sources", query)

    def count_due(self, now: datetime, interval: timedelta) -> int:
        """How many sources ``due_sources`` would return, without reading them."""
        query = sa.select(sa.func.count()).select_from(_sources).where(due_condition(now, interval))
        with self._errors("count due sources"), self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def set_next_due(self, due: dict[str, datetime]) -> None:
        """Record when each source (id -> time) is due next."""
        values = {sid: format_rfc3339(when) for sid, when in due.items()}

        def work(conn: sa.Connection) -> None:
            for sid, when in values.items():
                conn.execute(
                    sa.update(_sources).where(_sources.c.id == sid).values(next_due_at=when)
                )

        self._write(f"schedule {len(values)} source(s)", work)

    @property
    def engine(self) -> sa.Engine:
        """The database engine, for tables kept beside the index (run log, outbox)."""
        return self._engine

    # Captures

    def record_capture(self, stored: StoredManifest) -> None:
        """Record a stored manifest; recording the same capture again changes nothing.

        The source must already be in the index. A capture id recorded with a different
        manifest hash raises IntegrityError.
        """
        values = capture_values(stored)

        def work(conn: sa.Connection) -> None:
            source = conn.execute(
                sa.select(_sources.c.id).where(_sources.c.id == values["source_id"])
            ).first()
            if source is None:
                raise StorageError(
                    f"capture {values['id']} belongs to source {values['source_id']}, "
                    "which is not in the index (upsert_source first)"
                )
            known = conn.execute(
                sa.select(_captures.c.manifest_sha256).where(_captures.c.id == values["id"])
            ).first()
            if known is None:
                conn.execute(sa.insert(_captures).values(values))
            elif known.manifest_sha256 != values["manifest_sha256"]:
                raise IntegrityError(
                    f"capture {values['id']} is already recorded with manifest "
                    f"{known.manifest_sha256}, not {values['manifest_sha256']}"
                )
            refresh_derived(conn, values["source_id"])

        self._write(f"record capture {values['id']}", work)

    def _select_captures(self, action: str, query: sa.Select) -> list[CaptureRow]:
        with self._errors(action), self._engine.connect() as conn:
            return [capture_row(row) for row in conn.execute(query)]

    def captures(self, source_id: str) -> list[CaptureRow]:
        """The source's captures, oldest first."""
        query = (
            sa.select(_captures)
            .where(_captures.c.source_id == source_id)
            .order_by(_captures.c.captured_at, _captures.c.id)
        )
        return self._select_captures("list captures", query)

    def latest_capture(self, source_id: str) -> CaptureRow | None:
        """The source's newest capture, or None."""
        query = (
            sa.select(_captures)
            .where(_captures.c.source_id == source_id)
            .order_by(_captures.c.captured_at.desc(), _captures.c.id.desc())
            .limit(1)
        )
        rows = self._select_captures("read the latest capture", query)
        return rows[0] if rows else None

    def get_capture(self, capture_id: str) -> CaptureRow | None:
        """The capture with this id, or None."""
        query = sa.select(_captures).where(_captures.c.id == capture_id)
        rows = self._select_captures("read a capture", query)
        return rows[0] if rows else None

    # Whole index

    def rebuild(self, archive: Archive) -> tuple[int, int]:
        """Replace every row with what the archive holds; returns (sources, captures).

        One transaction: if reading the archive fails, the old index stays as it was.
        """
        counts = [0, 0]

        def work(conn: sa.Connection) -> None:
            counts[:] = [0, 0]
            conn.execute(sa.delete(_captures))
            conn.execute(sa.delete(_sources))
            for source in archive.iter_sources():
                try:
                    conn.execute(sa.insert(_sources).values(source_values(source)))
                except ValueError as exc:
                    raise IntegrityError(f"source record {source.get('id')!r}: {exc}") from exc
                counts[0] += 1
                for stored in archive.iter_manifests(source["id"]):
                    if stored.manifest.get("source_id") != source["id"]:
                        raise IntegrityError(
                            f"manifest {stored.key} names source "
                            f"{stored.manifest.get('source_id')!r}"
                        )
                    try:
                        conn.execute(sa.insert(_captures).values(capture_values(stored)))
                    except ValueError as exc:
                        raise IntegrityError(f"manifest {stored.key}: {exc}") from exc
                    counts[1] += 1
            self.refresh_all_sources(conn)

        self._write("rebuild", work)
        return counts[0], counts[1]

    @staticmethod
    def refresh_all_sources(conn: sa.Connection) -> None:
        """Recompute every source's capture-derived columns in one statement."""
        conn.execute(sa.update(_sources).values(**derived(_sources.c.id)))

    def status_rows(self, with_citations: bool = False) -> list[StatusRow]:
        """Every registered source with its newest capture: one query, whatever the count.

        ``with_citations`` adds each source's URLs and citations (JSON to decode: slower).
        """
        s = _sources.c
        columns = [s.id, s.canonical_url, s.added_at, s.next_due_at, s.unreachable_streak]
        columns += [s.latest_capture_id, s.last_captured_at, s.latest_verdict, s.latest_reason]
        columns += [s.latest_http_status, s.latest_final_url]
        if with_citations:
            columns += [sa.cast(s.urls, sa.Text), sa.cast(s.citations, sa.Text)]
        found = list(self._listed_rows(columns))
        if not with_citations:
            return [StatusRow(*row) for row in found]
        # One json.loads for all rows (as in source_rows), not one per value.
        decoded = json.loads("[" + ",".join(f"{row[-2]},{row[-1]}" for row in found) + "]")
        return [
            StatusRow(*row[:-2], decoded[2 * n], decoded[2 * n + 1]) for n, row in enumerate(found)
        ]

    def status_lines(self) -> Iterator[StatusLine]:
        """What plain `status` prints of every registered source, in `status_rows`'s order.

        Only those six columns, streamed: at 100,000 sources the rows the driver parses
        are most of the command's time, and the caller formats a chunk while PostgreSQL
        reads the next. Consume it whole or close it: it holds a connection until then.
        """
        s = _sources.c
        yield from self._listed_rows(
            [
                s.canonical_url,
                s.next_due_at,
                s.unreachable_streak,
                s.last_captured_at,
                s.latest_verdict,
                s.latest_reason,
            ]
        )

    def _listed_rows(self, columns: list[sa.ColumnElement]) -> Iterator[tuple]:
        """These columns of every registered source in `status`'s order, as driver tuples."""
        s = _sources.c
        query = sa.select(*columns).where(s.removed_at.is_(None)).order_by(s.added_at, s.id)
        # 100,000 rows: the driver's own tuples, without SQLAlchemy's per-row work (a third
        # of `status`'s time). The query has no parameters, so its SQL text is complete.
        sql = str(query.compile(dialect=self._engine.dialect))
        dbapi = self._engine.dialect.loaded_dbapi
        with self._errors("read the status"), self._engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                # psycopg with libpq 17+ hands rows over in chunks as the server sends
                # them; otherwise (SQLite, an older libpq) the cursor's rows one by one.
                if self.dialect == "postgresql" and dbapi.pq.version() >= 170000:
                    yield from cursor.stream(sql, size=_STREAM_ROWS)
                else:
                    cursor.execute(sql)
                    yield from cursor
            except dbapi.Error as exc:
                raise StorageError(f"index {self.url}: cannot read the status: {exc}") from exc
            finally:
                cursor.close()

    def dump(self) -> dict:
        """Every row as plain data, ordered by id: for comparing two indexes."""
        sources = self._select_sources(
            "dump", sa.select(*SOURCE_ROW_COLUMNS).order_by(_sources.c.id)
        )
        captures = self._select_captures("dump", sa.select(_captures).order_by(_captures.c.id))
        return {
            "sources": [asdict(row) for row in sources],
            "captures": [asdict(row) for row in captures],
        }


def _reason(exc: sa_exc.SQLAlchemyError) -> str:
    """The driver's first message line; the full text would carry SQL and parameters."""
    origin = getattr(exc, "orig", None) or exc
    lines = str(origin).strip().splitlines()
    return f"{type(origin).__name__}: {lines[0] if lines else ''}"
