"""The run's plan moves into the state database: manifests, their rows, and subtasks.

Workers share no folder: the scan's manifest (a Parquet file in the work folder before)
and the subtasks partition cuts it into must be where a copy task on any worker finds
them. Three new tables; nothing existing changes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sharelift_manifests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(63), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("rows", sa.BigInteger),
        sa.UniqueConstraint("job", "run_id", name="uq_sharelift_manifests_run"),
    )
    op.create_table(
        "sharelift_manifest_rows",
        sa.Column("manifest", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("row_no", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("mode", sa.Integer),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text),
    )
    op.create_table(
        "sharelift_subtasks",
        sa.Column("manifest", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("subtask", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("start_row", sa.BigInteger, nullable=False),
        sa.Column("stop_row", sa.BigInteger, nullable=False),
        sa.Column("files", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("done_at", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("sharelift_subtasks")
    op.drop_table("sharelift_manifest_rows")
    op.drop_table("sharelift_manifests")
