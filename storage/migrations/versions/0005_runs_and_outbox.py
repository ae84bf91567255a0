"""The run log and the notification outbox under migrations (storage/runlog.py, outbox.py).

Before this revision each made its own table on first use (create_all), and the run log
added its fleet columns (worker, captures) itself. A database from then keeps its rows:
what is missing is added, what is there is left alone.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Added to `runs` after its first release: a fleet batch's worker, its captures, and the
# holder name of its leases (how a worker taking over finds the batch of a dead one).
_RUNS_FLEET_COLUMNS = {
    "worker": sa.String(255),
    "captures": sa.JSON(),
    "lease_holder": sa.String(200),
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "runs" not in tables:
        op.create_table(
            "runs",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("started_at", sa.String(32), nullable=False),
            sa.Column("ended_at", sa.String(32), nullable=True),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("due", sa.Integer, nullable=False),
            sa.Column("counts", sa.JSON, nullable=False),
            sa.Column("errors", sa.JSON, nullable=False),
            *(sa.Column(name, kind, nullable=True) for name, kind in _RUNS_FLEET_COLUMNS.items()),
        )
    else:
        present = {c["name"] for c in inspector.get_columns("runs")}
        for name, kind in _RUNS_FLEET_COLUMNS.items():
            if name not in present:
                op.add_column("runs", sa.Column(name, kind, nullable=True))
    if "outbox" not in tables:
        op.create_table(
            "outbox",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("channel", sa.String(64), nullable=False),
            sa.Column("event", sa.JSON, nullable=False),
            sa.Column("created_at", sa.String(32), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("next_attempt_at", sa.String(32), nullable=False),
            sa.Column("last_error", sa.Text, nullable=True),
            sa.Column("delivered_at", sa.String(32), nullable=True),
        )
    indexes = {
        "ix_runs_started_at": ("runs", ["started_at"]),
        "ix_runs_lease_holder": ("runs", ["lease_holder"]),
        "ix_outbox_due": ("outbox", ["delivered_at", "next_attempt_at"]),
    }
    for name, (table, columns) in indexes.items():
        if table not in tables or name not in {i["name"] for i in inspector.get_indexes(table)}:
            op.create_index(name, table, columns)


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("runs")
