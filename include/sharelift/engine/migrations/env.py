"""Alembic's environment for the state database: run on the connection the caller holds.

``upgrade_to_head`` passes a connection that is already in a transaction and under a lock;
Alembic then opens no transaction of its own and the caller commits.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "sharelift's migrations run through sharelift.engine.migrations.upgrade_to_head"
    )
context.configure(
    connection=connection,
    version_table=context.config.get_main_option("version_table") or "alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
