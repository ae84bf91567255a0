"""Alembic's entry point: run the revisions on the connection storage.migrations passes in.

No alembic.ini and no URL here: the Index opens the database, takes the migration lock and
hands its connection over in ``config.attributes["connection"]``, already in a transaction,
so the revisions commit (or roll back) together with the lock.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
