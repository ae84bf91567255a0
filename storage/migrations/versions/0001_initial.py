"""The index as it stood when migrations began: sources and captures.

A database made before migrations existed already has these tables (the old code ran
create_all): they are left as they are here, and 0002 adds what they lack.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "sources" not in present:
        op.create_table(
            "sources",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("canonical_url", sa.Text, nullable=False),
            sa.Column("urls", sa.JSON, nullable=False),
            sa.Column("added_at", sa.String(32), nullable=False),
            sa.Column("citations", sa.JSON, nullable=False),
            sa.Column("last_captured_at", sa.String(32), nullable=True),
            sa.Column("removed_at", sa.String(32), nullable=True),
            sa.Column("next_due_at", sa.String(32), nullable=True),
            sa.Column("latest_capture_id", sa.String(64), nullable=True),
            sa.Column("latest_verdict", sa.String(32), nullable=True),
            sa.Column("latest_reason", sa.Text, nullable=True),
            sa.Column("latest_http_status", sa.Integer, nullable=True),
            sa.Column("latest_final_url", sa.Text, nullable=True),
            sa.Column("unreachable_streak", sa.Integer, nullable=True),
        )
        op.create_index("ix_sources_last_captured_at", "sources", ["last_captured_at"])
        op.create_index("ix_sources_next_due_at", "sources", ["next_due_at"])
        # Hash on PostgreSQL: a btree entry cannot hold a URL of several kilobytes.
        op.create_index(
            "ix_sources_canonical_url", "sources", ["canonical_url"], postgresql_using="hash"
        )
    if "captures" not in present:
        op.create_table(
            "captures",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("source_id", sa.String(64), sa.ForeignKey("sources.id"), nullable=False),
            sa.Column("captured_at", sa.String(32), nullable=False),
            sa.Column("verdict", sa.String(32), nullable=False),
            sa.Column("reason", sa.Text, nullable=True),
            sa.Column("http_status", sa.Integer, nullable=True),
            sa.Column("final_url", sa.Text, nullable=True),
            sa.Column("error", sa.Text, nullable=True),
            sa.Column("manifest_key", sa.Text, nullable=False),
            sa.Column("manifest_sha256", sa.String(64), nullable=False),
            sa.Column("text_sha256", sa.String(64), nullable=True),
            sa.Column("artifacts", sa.JSON, nullable=False),
            sa.Column("next_due_at", sa.String(32), nullable=True),
            sa.Column("rendering", sa.JSON, nullable=True),
        )
        op.create_index("ix_captures_source_captured", "captures", ["source_id", "captured_at"])


def downgrade() -> None:
    op.drop_table("captures")
    op.drop_table("sources")
