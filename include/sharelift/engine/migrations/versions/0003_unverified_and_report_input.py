"""Outcomes get ``unverified`` (why verify could not check a copied object); runs get
``report_input`` (what the report is built from, kept so that it can be stored again).

Verify turns a copied file into a failed one only on a measured mismatch. An object it
could not check (the bucket kept answering 503, the connection kept breaking) stays
copied, and this column says why it was not checked; the report counts and lists them.

A report the bucket refused leaves the run Failed; ``sharelift report`` builds it again
from the state database, and the run's scan summary and verify counts it needs are kept
in ``report_input`` (JSON) by the report step before it uploads anything.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sharelift_file_outcomes", sa.Column("unverified", sa.Text))
    op.add_column("sharelift_runs", sa.Column("report_input", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("sharelift_file_outcomes") as batch:
        batch.drop_column("unverified")
    with op.batch_alter_table("sharelift_runs") as batch:
        batch.drop_column("report_input")
