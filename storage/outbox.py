"""The notification outbox: one row per (event, channel), kept until it is delivered.

A notification is written here before it is sent, so a channel that is down, or a run
that ends mid-delivery, never loses it: the next run sends what is still pending. Rows
name their channel ("webhook", "apprise:0"), never its URL, which may hold a secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from crawler.errors import StorageError
from storage.ids import format_rfc3339
from storage.index import Index

# Waits after the 1st, 2nd, 3rd failure; every later retry waits the last one. Never
# given up: a notification about a vanished source must not vanish itself.
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30))
RETRY_EVERY = timedelta(hours=2)
MAX_ERROR_CHARS = 500

# The table as queries see it; storage/migrations/versions makes it (0005).
_metadata = sa.MetaData()
outbox_table = sa.Table(
    "outbox",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("event", sa.JSON, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.String(32), nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),  # redacted by the sender
    sa.Column("delivered_at", sa.String(32), nullable=True),
    sa.Index("ix_outbox_due", "delivered_at", "next_attempt_at"),
)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    channel: str
    event: dict
    created_at: str
    attempts: int
    next_attempt_at: str
    last_error: str | None
    delivered_at: str | None


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt (1-based)."""
    if attempts < 1:
        return timedelta(0)
    return RETRY_DELAYS[attempts - 1] if attempts <= len(RETRY_DELAYS) else RETRY_EVERY


def _now(at: datetime | None) -> str:
    return format_rfc3339(at or datetime.now(UTC))


class Outbox:
    """Pending and delivered notifications in the index's database (its table: 0005)."""

    def __init__(self, index: Index) -> None:
        self.engine = index.engine

    def _run(self, statement: sa.Executable) -> sa.CursorResult:
        try:
            with self.engine.begin() as conn:
                return conn.execute(statement)
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError(f"outbox: {exc.__class__.__name__}") from exc

    def add(
        self, events: Iterable[dict], channels: Iterable[str], now: datetime | None = None
    ) -> int:
        """Queue every event for every channel, due at once; returns the rows added."""
        at = _now(now)
        rows = [
            {
                "channel": channel,
                "event": event,
                "created_at": at,
                "attempts": 0,
                "next_attempt_at": at,
                "last_error": None,
                "delivered_at": None,
            }
            for event in events
            for channel in channels
        ]
        if rows:
            self._run(sa.insert(outbox_table).values(rows))
        return len(rows)

    def pending(self, now: datetime | None = None) -> list[OutboxRow]:
        """Undelivered rows due at ``now``, oldest first."""
        query = (
            sa.select(outbox_table)
            .where(
                outbox_table.c.delivered_at.is_(None), outbox_table.c.next_attempt_at <= _now(now)
            )
            .order_by(outbox_table.c.created_at, outbox_table.c.id)
        )
        return [OutboxRow(**row._mapping) for row in self._run(query)]

    def undelivered(self, channels: Iterable[str] | None = None) -> int:
        """How many rows (of these channels, or all) are not delivered yet, due or not."""
        query = sa.select(sa.func.count()).where(outbox_table.c.delivered_at.is_(None))
        if channels is not None:
            query = query.where(outbox_table.c.channel.in_(list(channels)))
        return int(self._run(query).scalar_one())

    def all(self) -> list[OutboxRow]:
        """Every row, oldest first (for inspection and tests)."""
        query = sa.select(outbox_table).order_by(outbox_table.c.created_at, outbox_table.c.id)
        return [OutboxRow(**row._mapping) for row in self._run(query)]

    def delivered(self, row_id: int, now: datetime | None = None) -> None:
        """Mark a row sent; its last_error stays, as the history of a late delivery."""
        self._run(
            sa.update(outbox_table)
            .where(outbox_table.c.id == row_id)
            .values(delivered_at=_now(now), attempts=outbox_table.c.attempts + 1)
        )

    def failed(self, row_id: int, error: str, retry_at: datetime) -> None:
        """Record a failed attempt; ``error`` must already be redacted."""
        self._run(
            sa.update(outbox_table)
            .where(outbox_table.c.id == row_id)
            .values(
                attempts=outbox_table.c.attempts + 1,
                last_error=error[:MAX_ERROR_CHARS],
                next_attempt_at=format_rfc3339(retry_at),
            )
        )
