"""Leases: which fleet worker captures which source, until when.

A worker takes a lease on each source before capturing it and releases it after; a
lease whose holder died expires after its TTL. Taking is atomic per source on SQLite and
PostgreSQL alike: of two workers (two machines) taking the same source at once, one gets
it. Together with the "not captured since" condition checked in the same transaction,
a redelivered or duplicated task never captures a source twice for one due time.

Times are RFC 3339 UTC text like the rest of the index. On PostgreSQL "now" is the
database server's clock, so workers with skewed clocks agree on expiry; on SQLite the
database is on one machine, and its clock is the process's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from storage.ids import format_rfc3339, parse_rfc3339
from storage.index import Index
from storage.indextables import sources_table

_metadata = sa.MetaData()

# Made by storage/migrations/versions/0003_leases.py.
leases_table = sa.Table(
    "leases",
    _metadata,
    sa.Column("source_id", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("taken_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
    sa.Index("ix_leases_expires_at", "expires_at"),
)

_HOLDER_MAX = 200  # the column's width
# Ids per statement: well under SQLite's and PostgreSQL's bound-parameter limits.
_CHUNK = 500


class Leases:
    """The lease table of an index (SQLite or PostgreSQL)."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def take(
        self, source_ids: list[str], holder: str, ttl_s: float, *, not_captured_since: str
    ) -> list[str]:
        """Lease each source that has no live lease and is still due; returns the ids taken.

        A source is due when it is registered and its last_captured_at is NULL or before
        ``not_captured_since`` (RFC 3339). An expired lease (its holder died) is taken over.
        """
        if ttl_s <= 0:
            raise ValueError(f"a lease needs a positive TTL, got {ttl_s!r}")
        if not 0 < len(holder) <= _HOLDER_MAX:
            raise ValueError(f"a lease holder is 1 to {_HOLDER_MAX} characters, got {holder!r}")
        since = format_rfc3339(parse_rfc3339(not_captured_since))
        taken: list[str] = []
        for chunk in _chunks(sorted(set(source_ids))):
            with self._index.locked(f"lease {len(chunk)} source(s)") as conn:
                taken += _take(conn, chunk, holder, ttl_s, since)
        return taken

    def release(self, source_ids: list[str], holder: str) -> None:
        """End this holder's leases on these sources (another holder's stay)."""
        for chunk in _chunks(source_ids):
            with self._index.locked(f"release {len(chunk)} lease(s)") as conn:
                conn.execute(
                    sa.delete(leases_table).where(
                        leases_table.c.source_id.in_(chunk), leases_table.c.holder == holder
                    )
                )

    def renew(self, source_ids: list[str], holder: str, ttl_s: float) -> None:
        """Extend this holder's leases to now + ttl_s (a lease taken over meanwhile stays)."""
        for chunk in _chunks(source_ids):
            with self._index.locked(f"renew {len(chunk)} lease(s)") as conn:
                expires = format_rfc3339(_now(conn) + timedelta(seconds=ttl_s))
                conn.execute(
                    sa.update(leases_table)
                    .where(leases_table.c.source_id.in_(chunk), leases_table.c.holder == holder)
                    .values(expires_at=expires)
                )

    def live_count(self) -> int:
        """How many sources are leased right now."""
        with self._index.reading("count leases") as conn:
            now = format_rfc3339(_now(conn))
            query = sa.select(sa.func.count()).where(leases_table.c.expires_at > now)
            return int(conn.execute(query).scalar_one())

    def dead_holders(self, source_ids: list[str]) -> dict[str, list[str]]:
        """The holders whose leases on these sources expired (they died), with those sources."""
        found: dict[str, list[str]] = {}
        for chunk in _chunks(sorted(set(source_ids))):
            with self._index.reading("list expired leases") as conn:
                now = format_rfc3339(_now(conn))
                query = sa.select(leases_table.c.holder, leases_table.c.source_id).where(
                    leases_table.c.source_id.in_(chunk), leases_table.c.expires_at <= now
                )
                for holder, sid in conn.execute(query):
                    found.setdefault(holder, []).append(sid)
        return found

    def expired(self) -> list[str]:
        """Ids of sources whose lease expired without a release (its holder died)."""
        with self._index.reading("list expired leases") as conn:
            now = format_rfc3339(_now(conn))
            query = (
                sa.select(leases_table.c.source_id)
                .where(leases_table.c.expires_at <= now)
                .order_by(leases_table.c.source_id)
            )
            return list(conn.execute(query).scalars())


def _take(conn: sa.Connection, ids: list[str], holder: str, ttl_s: float, since: str) -> list[str]:
    """One transaction: lock the due sources, then lease those without a live lease."""
    s = sources_table.c
    # FOR UPDATE (PostgreSQL): a capture being recorded for one of these sources finishes
    # first, and the condition is checked again on its result; the lock, held to commit,
    # also orders two takers. On SQLite the transaction holds the write lock already.
    due = conn.execute(
        sa.select(s.id)
        .where(
            s.id.in_(ids),
            s.removed_at.is_(None),
            sa.or_(s.last_captured_at.is_(None), s.last_captured_at < since),
        )
        .order_by(s.id)
        .with_for_update()
    ).scalars()
    due_ids = list(due)
    now = _now(conn)
    # A dead holder's lease on a source it captured before dying is never taken over (the
    # source is no longer due); the redelivered task ends it here so it does not linger.
    conn.execute(
        sa.delete(leases_table).where(
            leases_table.c.source_id.in_(ids),
            leases_table.c.source_id.not_in(due_ids),
            leases_table.c.expires_at <= format_rfc3339(now),
        )
    )
    if not due_ids:
        return []
    rows = [
        {
            "source_id": sid,
            "holder": holder,
            "taken_at": format_rfc3339(now),
            "expires_at": format_rfc3339(now + timedelta(seconds=ttl_s)),
        }
        for sid in due_ids
    ]
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(leases_table)
    # A live lease is kept (the row is neither updated nor returned); an expired one is
    # taken over.
    upsert = insert.values(rows).on_conflict_do_update(
        index_elements=[leases_table.c.source_id],
        set_={
            "holder": insert.excluded.holder,
            "taken_at": insert.excluded.taken_at,
            "expires_at": insert.excluded.expires_at,
        },
        where=leases_table.c.expires_at <= format_rfc3339(now),
    )
    return sorted(conn.execute(upsert.returning(leases_table.c.source_id)).scalars())


def _now(conn: sa.Connection) -> datetime:
    """The lease clock: the PostgreSQL server's, or this machine's beside a SQLite file."""
    if conn.dialect.name == "postgresql":
        return conn.execute(sa.select(sa.func.clock_timestamp())).scalar_one().astimezone(UTC)
    return datetime.now(UTC)


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    items = list(ids)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
