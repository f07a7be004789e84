"""The state database's schema, versioned with Alembic: brought to the newest revision once.

``StateStore`` calls ``upgrade_to_head`` when it opens a database. The first call of a
process for a URL reads the revision the database is at (one SELECT); later calls send
nothing. A database behind this code is brought to the head in one transaction under a
lock: a new one by creating the declared tables and recording the head, one at an older
revision (or made before migrations, without a version table) by running the
revisions. Twenty copy tasks opening a new database at the same moment therefore
create it once and the others find it done:

* PostgreSQL: ``pg_advisory_xact_lock`` (released with the transaction);
* SQLite: ``BEGIN IMMEDIATE`` takes the write lock before the revision is read again
  (the busy timeout makes the others wait for it);
* any other database: the first writer wins, the others re-read the revision.

The revision is kept in ``sharelift_schema_version``, not Alembic's default
``alembic_version``: a state database that shares a PostgreSQL database with another
Alembic-managed application (Airflow's own metadata, say) must not read its revision.

A database at a revision this code does not know was upgraded by a newer sharelift:
it is refused with ``StateSchemaError`` and left unchanged.

A new revision is a file in ``versions/`` with ``revision`` set to the next number and
``down_revision`` to the previous one, ``HEAD`` below set to it, and the tables in
``state.py`` changed to match (the tests compare both ways of making a database). The
tables in a revision are frozen copies, never imported from ``state.py``: the code
moves on, a revision must not.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from sharelift.errors import ShareliftError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection, Engine

VERSION_TABLE = "sharelift_schema_version"
HEAD = "0003"  # the newest revision in versions/ (a test checks that they agree)
# Any fixed 64-bit number: PostgreSQL advisory locks are named by integers.
_ADVISORY_LOCK_KEY = 0x7368_6172_656C_6966  # b"sharelif"

# URLs (password included: the key never leaves this set) of databases found at head.
_at_head: set[str] = set()


class StateSchemaError(ShareliftError):
    """The state database's schema cannot be used by this version of sharelift."""


def upgrade_to_head(engine: Engine, tables: sa.MetaData) -> None:
    """Bring the database behind ``engine`` to the newest schema, at most once per process.

    ``tables`` are the tables the code declares, which are the newest schema (a test
    holds the migrations to them): a database with none of them is created from them in
    one step, as Alembic's documentation advises for a new database.
    """
    key = engine.url.render_as_string(hide_password=False)
    if key in _at_head:
        return
    with engine.connect() as conn:
        current = _revision(conn)
    if current != HEAD:
        _check_known(current, engine)
        _upgrade(engine, tables)
    if engine.url.database not in (None, "", ":memory:"):
        _at_head.add(key)  # an in-memory database is new with every engine


def _upgrade(engine: Engine, tables: sa.MetaData) -> None:
    with engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        elif dialect == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            current = _revision(conn)  # again, under the lock: another process may be done
            _check_known(current, engine)
            if current == HEAD:
                pass
            elif current is None and not set(sa.inspect(conn).get_table_names()) & set(
                tables.tables
            ):
                _create(conn, tables)
            else:
                _migrate(conn)
            conn.commit()
        except sa.exc.DBAPIError:
            if dialect in ("postgresql", "sqlite"):
                raise
            # No lock on this database: another process may have upgraded at the same
            # moment. Its work stands if the revision is now the head.
            conn.rollback()
            if _revision(conn) != HEAD:
                raise


def _create(conn: Connection, tables: sa.MetaData) -> None:
    """A new database: the newest tables, and the revision they are at.

    Alembic's ``stamp`` would write the version table; it is written here with the same
    definition so that a new database, which every first run and every benchmark case
    starts with, does not pay for importing Alembic (a fifth of a second).
    """
    tables.create_all(conn)
    version = sa.Table(
        VERSION_TABLE,
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
    )
    version.create(conn)
    conn.execute(version.insert().values(version_num=HEAD))


def _migrate(conn: Connection) -> None:
    """Run the revisions from the one the database is at up to the head."""
    from alembic import command

    config = _config()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def _revision(conn: Connection) -> str | None:
    """The revision the database is at (None: no version table yet).

    Alembic's ``MigrationContext`` reads the same row; plain SQL keeps Alembic (a fifth
    of a second to import, and log lines) out of every task that finds the database
    already at head.
    """
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def _check_known(revision: str | None, engine: Engine) -> None:
    if revision is None:
        return
    from alembic.util import CommandError

    try:
        _script().get_revision(revision)
    except CommandError:
        where = engine.url.render_as_string(hide_password=True)
        raise StateSchemaError(
            f"the state database {where} is at schema revision {revision!r}, which this "
            f"version of sharelift does not know (its newest is {HEAD!r}): a newer "
            "sharelift has upgraded it. Run that version, or point this one at another "
            "state database."
        ) from None


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    # configparser would read a '%' in the path as interpolation.
    config.set_main_option("script_location", str(Path(__file__).parent).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_table", VERSION_TABLE)
    return config


@cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())
