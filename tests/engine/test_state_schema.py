"""The state database's schema: created and upgraded by the migrations, once, by one process.

The databases "from before migrations" are built from the exact DDL that sharelift's
``create_all`` emitted at three points of its history (``state_db_before_alembic/``).
"""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

import sharelift.engine.flow_control as flow_control
import sharelift.engine.migrations as migrations
from sharelift.engine.migrations import HEAD, VERSION_TABLE, StateSchemaError
from sharelift.engine.state import OutcomeRow, StateStore, metadata

OLD_SCHEMAS = Path(__file__).parent / "state_db_before_alembic"

# name: (DDL file, whether flow control had been used, so that its tables exist)
SHAPES = {
    "first-release": ("first_release.sql", False),
    "before-etag": ("before_etag.sql", True),
    "main": ("main.sql", True),
    "main-flow-control-never-used": ("main.sql", False),
}


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


def build_old_database(url: str, shape: str) -> None:
    """A state database as sharelift before migrations left it, with a run in it."""
    ddl, flow_used = SHAPES[shape]
    text = "\n".join(
        line for line in (OLD_SCHEMAS / ddl).read_text().splitlines() if not line.startswith("--")
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in filter(str.strip, text.split(";")):
            if flow_used or "sharelift_flow" not in statement:
                conn.exec_driver_sql(statement)
        conn.exec_driver_sql(
            "INSERT INTO sharelift_runs (job, run_id, migration_type, state, started_at, "
            "files_scanned) VALUES ('old-job', 'r1', 'full', 'Completed', 1700000000.5, 2)"
        )
        for i, crc in enumerate(["18446744073709551615", None]):
            conn.execute(
                sa.text(
                    "INSERT INTO sharelift_file_outcomes (job, run_id, path, object_key, subtask, "
                    "status, size, crc64, verified) VALUES "
                    "('old-job', 'r1', :path, :key, 0, 'copied', 10, :crc, :verified)"
                ),
                {"path": f"a/f{i}", "key": f"to/a/f{i}", "crc": crc, "verified": i == 0},
            )
        if flow_used:
            conn.exec_driver_sql(
                "INSERT INTO sharelift_flow_control (job, rules, timezone, updated_at) VALUES "
                """('old-job', '[{"start": 480, "end": 1080, "mb_per_s": 10.0}]', 'UTC', 1.0)"""
            )
    engine.dispose()


def revision_of(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.scalars(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")))
    finally:
        engine.dispose()


def migrate_from_nothing(url: str) -> None:
    """Run every revision on an empty database, as Alembic alone would."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        migrations._migrate(conn)
        conn.commit()
    engine.dispose()


def sqlite_schema(url: str) -> set[tuple[str, str, str]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT type, name, sql FROM sqlite_master").all()
    engine.dispose()
    return {(kind, name, " ".join((sql or "").split())) for kind, name, sql in rows}


def differences_from_the_code(store: StateStore) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match the tables
    the code queries (state.py and flow_control.py): nothing, when the schema is right."""
    assert flow_control.flow_leases.metadata is metadata
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return list(compare_metadata(context, metadata))


def assert_rows_kept_and_etag_usable(store: StateStore, flow_used: bool) -> None:
    run = store.get_run("old-job", "r1")
    assert run is not None and (run["state"], run["files_scanned"]) == ("Completed", 2)
    assert run["run_number"] is None and run["spec"] is None
    rows = list(store.iter_outcomes("old-job", "r1"))
    assert [(r["path"], r["crc64"], r["etag"]) for r in rows] == [
        ("a/f0", "18446744073709551615", None),
        ("a/f1", None, None),
    ]
    store.record(
        "old-job", "r2", [OutcomeRow("b", "to/b", 0, "copied", 5, 1, 7, "", 1.0, 2.0, '"e1"')]
    )
    assert [r["etag"] for r in store.iter_outcomes("old-job", "r2")] == ['"e1"']
    setting = flow_control.get_flow_control(store, "old-job")
    assert (setting.text if setting else None) == ("08:00-18:00=10" if flow_used else None)


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine of this process sends while the test runs."""
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(Engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        sa.event.remove(Engine, "before_cursor_execute", listen)


@pytest.fixture
def new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a process that has not opened these databases yet."""
    monkeypatch.setattr(migrations, "_at_head", set())


def open_at_once(url: str, barrier: Any) -> None:
    barrier.wait(timeout=120)
    StateStore(url).close()


def open_in_processes_at_once(url: str, processes: int) -> list[int | None]:
    # fork: the children start with sharelift imported and reach the barrier together.
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes)
    children = [context.Process(target=open_at_once, args=(url, barrier)) for _ in range(processes)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=180)
    return [child.exitcode for child in children]


DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


# -- SQLite --------------------------------------------------------------------------


def test_head_names_the_newest_revision_in_the_migrations_folder() -> None:
    assert migrations._script().get_current_head() == HEAD


def test_a_fresh_database_gets_the_newest_schema(tmp_path: Path) -> None:
    store = StateStore(sqlite_url(tmp_path))
    assert differences_from_the_code(store) == []
    store.close()
    assert revision_of(sqlite_url(tmp_path)) == [HEAD]


def test_a_fresh_database_is_made_exactly_as_running_every_revision_makes_it(
    tmp_path: Path,
) -> None:
    created, migrated = f"sqlite:///{tmp_path}/created.db", f"sqlite:///{tmp_path}/migrated.db"
    StateStore(created).close()
    migrate_from_nothing(migrated)
    assert sqlite_schema(created) == sqlite_schema(migrated)
    assert revision_of(migrated) == [HEAD]


def test_opening_a_fresh_database_does_not_import_alembic(tmp_path: Path) -> None:
    """Every first run and every benchmark case starts with a new database."""
    code = (
        "import sys; from sharelift.engine.state import StateStore; "
        f"StateStore({sqlite_url(tmp_path)!r}).close(); print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    assert revision_of(sqlite_url(tmp_path)) == [HEAD]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_database_from_before_migrations_is_upgraded_with_its_rows_kept(
    tmp_path: Path, shape: str
) -> None:
    url = sqlite_url(tmp_path)
    build_old_database(url, shape)
    store = StateStore(url)
    assert differences_from_the_code(store) == []
    assert_rows_kept_and_etag_usable(store, flow_used=SHAPES[shape][1])
    store.close()
    assert revision_of(url) == [HEAD]


def test_opening_a_database_again_in_the_same_process_sends_no_statement(
    tmp_path: Path, statements: list[str]
) -> None:
    url = sqlite_url(tmp_path)
    build_old_database(url, "before-etag")
    StateStore(url).close()
    assert any(s.lstrip().upper().startswith("ALTER") for s in statements)
    statements.clear()
    StateStore(url).close()
    assert statements == []


def test_a_process_opening_a_current_database_only_reads_its_revision(
    tmp_path: Path, statements: list[str], new_process: None
) -> None:
    url = sqlite_url(tmp_path)
    StateStore(url).close()
    migrations._at_head.clear()
    statements.clear()
    StateStore(url).close()
    assert [s for s in statements if DDL.match(s)] == []
    assert any(VERSION_TABLE in s for s in statements)


@pytest.mark.parametrize("shape", [None, "before-etag"])
def test_twenty_processes_opening_a_database_at_once_all_succeed(
    tmp_path: Path, shape: str | None
) -> None:
    url = sqlite_url(tmp_path)
    if shape:
        build_old_database(url, shape)
    assert open_in_processes_at_once(url, 20) == [0] * 20
    assert revision_of(url) == [HEAD]
    store = StateStore(url)
    assert differences_from_the_code(store) == []
    store.close()


def test_opening_waits_for_a_writer_of_a_database_not_yet_in_wal_mode(tmp_path: Path) -> None:
    # SQLite refuses the switch to WAL at once while another connection writes (no busy
    # handler for it): a copy task opening an old database that another one is migrating.
    url = sqlite_url(tmp_path)
    build_old_database(url, "before-etag")
    writer = sqlite3.connect(tmp_path / "state.db", isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE sharelift_runs SET message = message")
    committed = threading.Timer(1.0, writer.execute, ["COMMIT"])
    committed.start()
    try:
        store = StateStore(url)
    finally:
        committed.join()
        writer.close()
    assert differences_from_the_code(store) == []
    store.close()
    assert revision_of(url) == [HEAD]


def test_a_database_upgraded_by_a_newer_sharelift_is_refused_and_left_alone(
    tmp_path: Path, new_process: None
) -> None:
    url = sqlite_url(tmp_path)
    StateStore(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
        conn.exec_driver_sql("ALTER TABLE sharelift_runs ADD COLUMN from_the_future TEXT")
    engine.dispose()
    migrations._at_head.clear()
    with pytest.raises(StateSchemaError) as refused:
        StateStore(url)
    message = str(refused.value)
    assert "'0099'" in message and "newer sharelift" in message and f"'{HEAD}'" in message
    assert revision_of(url) == ["0099"]


def test_the_revision_is_kept_apart_from_another_alembic_application_in_the_same_database(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('1b2e3c4d5f60')")
    StateStore(url).close()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").all() == [
            ("1b2e3c4d5f60",)
        ]
    engine.dispose()
    assert revision_of(url) == [HEAD]


def test_flow_control_on_a_bare_engine_brings_its_schema_up_first(tmp_path: Path) -> None:
    engine = sa.create_engine(sqlite_url(tmp_path))
    flow_control.set_flow_control(engine, "job", flow_control.FlowControl.parse("00:00-24:00=5"))
    assert flow_control.get_flow_control(engine, "job") is not None
    engine.dispose()
    assert revision_of(sqlite_url(tmp_path)) == [HEAD]


# -- PostgreSQL ----------------------------------------------------------------------


def test_a_fresh_postgresql_database_gets_the_newest_schema(postgres_database: str) -> None:
    store = StateStore(postgres_database)
    assert differences_from_the_code(store) == []
    store.close()
    assert revision_of(postgres_database) == [HEAD]


def test_running_every_revision_on_postgresql_gives_the_newest_schema(
    postgres_database: str,
) -> None:
    migrate_from_nothing(postgres_database)
    store = StateStore(postgres_database)
    assert differences_from_the_code(store) == []
    store.close()
    assert revision_of(postgres_database) == [HEAD]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_postgresql_database_from_before_migrations_is_upgraded_with_its_rows_kept(
    postgres_database: str, shape: str
) -> None:
    build_old_database(postgres_database, shape)
    store = StateStore(postgres_database)
    assert differences_from_the_code(store) == []
    assert_rows_kept_and_etag_usable(store, flow_used=SHAPES[shape][1])
    store.close()
    assert revision_of(postgres_database) == [HEAD]


@pytest.mark.parametrize("shape", [None, "before-etag"])
def test_twenty_processes_opening_a_postgresql_database_at_once_all_succeed(
    postgres_database: str, shape: str | None
) -> None:
    if shape:
        build_old_database(postgres_database, shape)
    assert open_in_processes_at_once(postgres_database, 20) == [0] * 20
    assert revision_of(postgres_database) == [HEAD]
    store = StateStore(postgres_database)
    assert differences_from_the_code(store) == []
    store.close()


def test_a_newer_postgresql_database_is_refused_without_showing_the_password(
    postgres_database: str, new_process: None
) -> None:
    StateStore(postgres_database).close()
    engine = sa.create_engine(postgres_database)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
    engine.dispose()
    # The test server trusts loopback, so any password is accepted: it must not be shown.
    with_password = sa.make_url(postgres_database).set(password="s3cret-pw")
    migrations._at_head.clear()
    with pytest.raises(StateSchemaError) as refused:
        StateStore(with_password.render_as_string(hide_password=False))
    assert "'0099'" in str(refused.value) and "s3cret-pw" not in str(refused.value)
    assert revision_of(postgres_database) == ["0099"]
