"""The ``sharelift_state`` connection is where every entry point finds the state database:
a limit set from the CLI reaches the copy tasks of a run through PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.dags.test_full_migration_local import set_connection

MB = 1_000_000


@pytest.fixture(scope="module")
def postgres(testbed_root: Path):  # type: ignore[no-untyped-def]
    from tests.servers.postgres import PostgresServer

    server = PostgresServer(testbed_root / "postgres-state-conn")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _airflow(*args: str) -> subprocess.CompletedProcess[str]:
    airflow = Path(sys.executable).with_name("airflow")
    return subprocess.run(
        [str(airflow), *args], env=os.environ.copy(), capture_output=True, text=True, timeout=300
    )


def _sharelift(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SHARELIFT_STATE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "sharelift.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def state_connection(postgres, airflow_db):  # type: ignore[no-untyped-def]
    """``sharelift_state`` stored in Airflow's metadata database, as an operator adds it."""
    uri = postgres.url.replace("postgresql+psycopg2://", "postgresql://")
    done = _airflow("connections", "add", "sharelift_state", "--conn-uri", uri)
    assert done.returncode == 0, done.stderr
    try:
        yield postgres
    finally:
        _airflow("connections", "delete", "sharelift_state")


def test_a_limit_set_from_the_cli_holds_for_the_copy_tasks(
    dagbag, state_connection, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from sharelift.engine.state import StateStore

    src, dst = tmp_path / "src", tmp_path / "bucket"
    for i in range(6):
        (src / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 2}" / f"f{i}.bin").write_bytes(os.urandom(MB))
    dst.mkdir()
    set_connection("pg_src", conn_type="sharelift_local", extra={"path": str(src)})
    set_connection("pg_dst", conn_type="sharelift_local_bucket", extra={"path": str(dst)})

    shown = _sharelift("config")
    assert "Airflow connection sharelift_state" in shown.stdout, shown.stdout + shown.stderr
    done = _sharelift("flow-control", "set", "pg-limited", "00:00-24:00=1", "--new-job")
    assert done.returncode == 0, done.stderr

    started = time.monotonic()
    dr = dagbag.get_dag("sharelift_migrate").test(
        run_conf={
            "job_name": "pg-limited",
            "source_conn_id": "pg_src",
            "destination_conn_id": "pg_dst",
            "subtask_file_count": 3,
            "retry_of": None,  # dag.test() keeps an earlier test's conf in the session
        }
    )
    elapsed = time.monotonic() - started
    assert dr.state == "success"
    # 6 MB at 1 MB/s: a lower bound only (a busy machine makes it slower, never faster);
    # the first second's burst is the bucket's capacity.
    assert elapsed >= 4.0
    store = StateStore(state_connection.url)
    (run,) = store.list_runs("pg-limited")
    assert run["state"] == "Completed"
    assert store.counts("pg-limited", run["run_id"])["copied"] == (6, 6 * MB)
    store.close()
    listed = _sharelift("runs", "pg-limited")
    assert "Completed" in listed.stdout, listed.stdout + listed.stderr
