"""The schema sharelift created by hand before its migrations; it adopts those databases.

Before Alembic, ``StateStore`` ran ``create_all`` and added missing columns on every
opening, and flow control created its tables on first use. Such a database has no
version table, so Alembic runs this revision on it as on an empty one. This revision
therefore creates only what is missing: a table absent (a fresh database, or flow
control never used), or a column added to a table after its first release (the runs'
``run_number``, ``retry_of`` and ``spec``; the outcomes' ``etag``). Rows stay as they are.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the tables as the code of that time declared them.
schema = sa.MetaData()

sa.Table(
    "sharelift_runs",
    schema,
    sa.Column("job", sa.String(63), primary_key=True),
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("migration_type", sa.String(16), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("files_scanned", sa.BigInteger),
    sa.Column("bytes_scanned", sa.BigInteger),
    sa.Column("files_to_copy", sa.BigInteger),
    sa.Column("bytes_to_copy", sa.BigInteger),
    sa.Column("subtasks", sa.Integer),
    sa.Column("window_start_ns", sa.BigInteger),
    sa.Column("window_end_ns", sa.BigInteger),
    sa.Column("report_url", sa.Text),
    sa.Column("message", sa.Text),
    sa.Column("run_number", sa.Integer),
    sa.Column("retry_of", sa.String(250)),
    sa.Column("spec", sa.Text),
)

outcomes = sa.Table(
    "sharelift_file_outcomes",
    schema,
    sa.Column("job", sa.String(63), primary_key=True),
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("object_key", sa.Text, nullable=False),
    sa.Column("subtask", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger),
    sa.Column("crc64", sa.String(20)),
    sa.Column("reason", sa.Text),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("verified", sa.Boolean),
    sa.Column("etag", sa.String(80)),
)
sa.Index("ix_outcomes_status", outcomes.c.job, outcomes.c.run_id, outcomes.c.status)

sa.Table(
    "sharelift_flow_control",
    schema,
    sa.Column("job", sa.String(63), primary_key=True),
    sa.Column("rules", sa.Text, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

sa.Table(
    "sharelift_flow_leases",
    schema,
    sa.Column("holder", sa.String(64), primary_key=True),
    sa.Column("job", sa.String(63), nullable=False, index=True),
    sa.Column("run_id", sa.String(250)),
    sa.Column("subtask", sa.Integer),
    sa.Column("worker", sa.String(255)),
    sa.Column("beat", sa.BigInteger, nullable=False),
    sa.Column("rate", sa.Float),
    sa.Column("started_at", sa.Float),
    sa.Column("last_seen", sa.Float),
)


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    present = set(inspector.get_table_names())
    for table in schema.sorted_tables:
        if table.name not in present:
            table.create(bind)  # with its indexes
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            if not column.nullable:
                raise RuntimeError(
                    f"table {table.name} has no column {column.name}: it was not made by "
                    "sharelift, so the state database cannot be upgraded"
                )
            op.add_column(table.name, sa.Column(column.name, column.type))
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(bind)


def downgrade() -> None:
    # This revision adopts databases that existed before it: undoing it would drop
    # tables it did not create, with their rows.
    raise NotImplementedError("the first revision of the state database is not undone")
