"""The run log: every run's start, end, counts and errors, kept beside the index."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from crawler.errors import StorageError
from storage.ids import new_capture_id, utc_now_rfc3339
from storage.index import Index

# The table as queries see it; storage/migrations/versions makes it (0005).
_metadata = sa.MetaData()
runs_table = sa.Table(
    "runs",
    _metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("ended_at", sa.String(32), nullable=True),
    # running, ok, interrupted, failed, killed; a fleet run-once also enqueued (--no-wait)
    # or unfinished (its wait timed out)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("due", sa.Integer, nullable=False),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("errors", sa.JSON, nullable=False),
    # Fleet mode: the worker (Celery hostname) that ran a batch, the captures it stored, and
    # the holder name of its leases (how the worker taking over a dead one's finds its batch).
    sa.Column("worker", sa.String(255), nullable=True),
    sa.Column("captures", sa.JSON, nullable=True),
    sa.Column("lease_holder", sa.String(200), nullable=True),
    sa.Index("ix_runs_started_at", "started_at"),
    sa.Index("ix_runs_lease_holder", "lease_holder"),
)


@dataclass(frozen=True)
class RunRecord:
    id: str
    kind: str
    started_at: str
    ended_at: str | None
    status: str
    due: int
    counts: dict
    errors: list
    worker: str | None = None
    captures: list | None = None
    lease_holder: str | None = None


class RunLog:
    """Runs recorded in the index's database (its table: migration 0005)."""

    def __init__(self, index: Index) -> None:
        self.engine = index.engine

    def _run(self, statement: sa.Executable) -> sa.CursorResult:
        try:
            with self.engine.begin() as conn:
                return conn.execute(statement)
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError(f"run log: {exc.__class__.__name__}") from exc

    def start(
        self, kind: str, due: int, worker: str | None = None, lease_holder: str | None = None
    ) -> str:
        run_id = new_capture_id()
        self._run(
            sa.insert(runs_table).values(
                id=run_id,
                kind=kind,
                started_at=utc_now_rfc3339(),
                ended_at=None,
                status="running",
                due=due,
                counts={},
                errors=[],
                worker=worker,
                lease_holder=lease_holder,
            )
        )
        return run_id

    def running_batch(self, lease_holder: str) -> RunRecord | None:
        """The fleet batch still "running" whose leases carry this holder name, if any."""
        query = sa.select(runs_table).where(
            runs_table.c.lease_holder == lease_holder, runs_table.c.status == "running"
        )
        try:
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError(f"run log: {exc.__class__.__name__}") from exc
        return None if row is None else RunRecord(**row._mapping)

    def close_abandoned(self) -> int:
        """Mark runs still "running" as "killed"; how many.

        Called under the run lock, when no other run of this index can be in progress: a
        row still running then belongs to a process killed (SIGKILL, power loss) before it
        could finish its run.
        """
        result = self._run(
            sa.update(runs_table)
            # A fleet's runs are not under this machine's lock: a worker may still run them.
            .where(runs_table.c.status == "running", runs_table.c.worker.is_(None))
            .values(
                status="killed",
                errors=["the run ended without finishing: its process was killed or stopped"],
            )
        )
        return result.rowcount or 0

    def finish(
        self,
        run_id: str,
        status: str,
        counts: dict,
        errors: list[str],
        captures: list[str] | None = None,
    ) -> None:
        """End a run; ``captures``: the ids of the captures it stored (fleet batches).

        A run ended already stays as it was: a batch closed as killed by the worker that
        took over its sources is not reopened by its own worker coming back late.
        """
        self._run(
            sa.update(runs_table)
            .where(runs_table.c.id == run_id, runs_table.c.status == "running")
            .values(
                ended_at=utc_now_rfc3339(),
                status=status,
                counts=counts,
                errors=errors[:100],
                captures=captures,
            )
        )

    def recent(self, limit: int = 50) -> list[RunRecord]:
        """The latest runs, newest first."""
        query = (
            sa.select(runs_table)
            .order_by(runs_table.c.started_at.desc(), runs_table.c.id)
            .limit(limit)
        )
        try:
            with self.engine.connect() as conn:
                return [RunRecord(**row._mapping) for row in conn.execute(query)]
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError(f"run log: {exc.__class__.__name__}") from exc
