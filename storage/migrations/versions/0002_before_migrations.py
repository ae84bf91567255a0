"""Bring an index made before migrations up to 0001: the columns and indexes it lacks.

The old code added new columns itself at every open (ALTER TABLE ADD COLUMN) and never
the indexes of existing tables; this revision does both once. Every column added since
the first release is nullable: its values come back with the next capture, or at once
with `citearchive reindex`. On a database 0001 created, nothing is missing.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from crawler.errors import StorageError

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The columns of 0001 that the first release lacked (name -> type), and every index.
_ADDED = {
    "sources": {
        "removed_at": sa.String(32),
        "next_due_at": sa.String(32),
        "latest_capture_id": sa.String(64),
        "latest_verdict": sa.String(32),
        "latest_reason": sa.Text(),
        "latest_http_status": sa.Integer(),
        "latest_final_url": sa.Text(),
        "unreachable_streak": sa.Integer(),
    },
    "captures": {"next_due_at": sa.String(32), "rendering": sa.JSON()},
}
_REQUIRED = {
    "sources": {"id", "canonical_url", "urls", "added_at", "citations", "last_captured_at"},
    "captures": {
        "id", "source_id", "captured_at", "verdict", "reason", "http_status", "final_url",
        "error", "manifest_key", "manifest_sha256", "text_sha256", "artifacts",
    },
}  # fmt: skip
_INDEXES = {
    "ix_sources_last_captured_at": ("sources", ["last_captured_at"], {}),
    "ix_sources_next_due_at": ("sources", ["next_due_at"], {}),
    "ix_sources_canonical_url": ("sources", ["canonical_url"], {"postgresql_using": "hash"}),
    "ix_captures_source_captured": ("captures", ["source_id", "captured_at"], {}),
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, added in _ADDED.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        lacking = sorted(_REQUIRED[table] - present)
        if lacking:
            raise StorageError(
                f"index table {table} lacks column {lacking[0]}: rebuild it with "
                "`citearchive reindex` into a new index"
            )
        for name, kind in added.items():
            if name not in present:
                op.add_column(table, sa.Column(name, kind, nullable=True))
    existing = {i["name"] for t in ("sources", "captures") for i in inspector.get_indexes(t)}
    for name, (table, columns, options) in _INDEXES.items():
        if name not in existing:
            op.create_index(name, table, columns, **options)


def downgrade() -> None:
    """Nothing to undo: 0001's schema is the same."""
