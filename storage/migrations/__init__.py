"""The index's schema migrations (Alembic), run by the Index when it opens a database.

Revisions live in versions/ and run in code (no alembic.ini). Opening an index that is
already at HEAD costs one read of ``alembic_version`` and does not even import Alembic;
otherwise the upgrade runs under a lock, so two processes opening a fresh database at
once do not both migrate: the second waits, then finds the work done.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from crawler.errors import StorageError

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

# The newest revision in versions/ (a test checks it against Alembic's own reading).
HEAD = "0005"

_HERE = Path(__file__).resolve().parent
# pg_advisory_xact_lock key of migrations: any constant other locks here do not use.
_PG_LOCK_KEY = 0x6369746D  # "citm"


@cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(_HERE))


def known_revisions() -> frozenset[str]:
    """Every revision in versions/, as Alembic reads them."""
    return frozenset(rev.revision for rev in _script().walk_revisions())


def alembic_head() -> str | None:
    """The head revision as Alembic computes it from versions/."""
    return _script().get_current_head()


def current(connection: sa.Connection) -> str | None:
    """The database's revision; None for an empty database or one made before migrations."""
    if not connection.dialect.has_table(connection, "alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: sa.Engine, locking: sa.Engine) -> None:
    """Bring the database to HEAD.

    ``locking`` begins its transactions with the database's write lock on SQLite
    (BEGIN IMMEDIATE); on PostgreSQL a transaction-scoped advisory lock serialises
    migrators. DDL is transactional on both: a failed revision leaves nothing behind.
    """
    with engine.connect() as conn:
        if current(conn) == HEAD:
            return
    from alembic import command
    from alembic.config import Config

    with locking.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
        revision = current(conn)
        if revision == HEAD:
            return  # another process migrated while this one waited for the lock
        if revision is not None and revision not in known_revisions():
            raise StorageError(
                f"the index is at schema revision {revision}, which this citearchive does "
                f"not know (its newest is {HEAD}): upgrade citearchive"
            )
        config = Config()
        config.set_main_option("script_location", str(_HERE))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
