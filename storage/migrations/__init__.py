"""The index's schema migrations (Alembic), run by the Index when it opens a database.

Revisions live in versions/ and run in code (no alembic.ini). Opening an index that is
already at the newest revision costs one read of ``alembic_version``; otherwise the
upgrade runs under a lock, so two processes opening a fresh database at once do not both
migrate: the second waits, then finds the work done.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from crawler.errors import StorageError

_HERE = Path(__file__).resolve().parent
# pg_advisory_xact_lock key of migrations: any constant other locks here do not use.
_PG_LOCK_KEY = 0x6369746D  # "citm"


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(_HERE))


def head() -> str:
    """The newest revision this code knows."""
    found = _script().get_current_head()
    assert found is not None, "storage/migrations/versions holds no revision"
    return found


@cache
def known_revisions() -> frozenset[str]:
    return frozenset(rev.revision for rev in _script().walk_revisions())


def current(connection: sa.Connection) -> str | None:
    """The database's revision; None for an empty database or one made before migrations."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: sa.Engine, locking: sa.Engine) -> None:
    """Bring the database to ``head()``.

    ``locking`` begins its transactions with the database's write lock on SQLite
    (BEGIN IMMEDIATE); on PostgreSQL a transaction-scoped advisory lock serialises
    migrators. DDL is transactional on both: a failed revision leaves nothing behind.
    """
    with engine.connect() as conn:
        if _checked(current(conn)) == head():
            return
    with locking.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
        if _checked(current(conn)) == head():
            return  # another process migrated while this one waited for the lock
        config = Config()
        config.set_main_option("script_location", str(_HERE))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def _checked(revision: str | None) -> str | None:
    if revision is not None and revision not in known_revisions():
        raise StorageError(
            f"the index is at schema revision {revision}, which this citearchive does not "
            f"know (its newest is {head()}): upgrade citearchive"
        )
    return revision
