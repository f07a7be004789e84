"""Incremental and sync jobs through a running Airflow, with a controlled clock.

``SHARELIFT_HOUR_SECONDS`` makes one "hour" of a migration interval or sync period a few
seconds, so a chain of incremental runs and repeated sync runs fit in a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import HOUR

# The folder's Airflow (conftest.py) starts in the setup of the first test that asks for
# it, and pytest-timeout counts setup: on a loaded machine that start alone takes minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SYNC_YAML = """\
job_name: sync-job
migration_type: sync
source_conn_id: sched_sync_src
destination_conn_id: sched_dst
destination_prefix: sync/
sync_period: 1h
sync_start: immediately
sync_no_overlap: true
"""


@pytest.fixture(scope="module")
def airflow(sharelift_airflow, oss_server):  # type: ignore[no-untyped-def]
    """The folder's Airflow (``conftest.py``, whose clock has ``HOUR``-second hours), with
    the sync job's file in its jobs folder and the destination every job here writes to."""
    (Path(sharelift_airflow.env["SHARELIFT_JOBS_DIR"]) / "sync-job.yaml").write_text(SYNC_YAML)
    oss_server.create_bucket("sched")
    sharelift_airflow.set_connection("sched_dst", **oss_server.connection_fields("sched"))
    return sharelift_airflow


def make(root: Path, rel: str, data: bytes) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def runs_of(airflow: Any, dag_id: str, job: str | None = None) -> list[dict[str, Any]]:
    body = airflow.api(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"}
    )
    runs = body["dag_runs"]
    if job:
        runs = [r for r in runs if (r.get("conf") or {}).get("job_name") == job]
    return runs


def wait_runs(
    airflow: Any, dag_id: str, count: int, job: str | None = None, timeout: float = 240
) -> list[dict[str, Any]]:
    """Wait until ``count`` runs have finished; returns them in order of run_after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [r for r in runs_of(airflow, dag_id, job) if r["state"] in ("success", "failed")]
        if len(done) >= count:
            return done
        time.sleep(0.5)
    raise AssertionError(
        f"only {len(done)} of {count} runs of {dag_id} finished: {runs_of(airflow, dag_id, job)}"
    )


def report_written_at(oss_server: Any, job: str, run_id: str) -> datetime:
    """When the run's report summary was made: its start plus its duration."""
    from sharelift.engine.report import report_folder
    from sharelift.local.airflow import parse_time
    from sharelift.storage import open_destination

    with open_destination(oss_server.destination_address(bucket="sched")) as dest:
        f = dest.open(report_folder(job, run_id) + f"{job}_summary.json")
        summary = json.loads(f.read())
        f.close()
    started = parse_time(summary["started_at"])
    assert started is not None
    return started + timedelta(seconds=summary["duration_seconds"])


def completed(oss_server: Any, job: str, run_id: str) -> list[str]:
    from sharelift.engine.report import report_folder, unescape_field
    from sharelift.storage import open_destination

    with open_destination(oss_server.destination_address(bucket="sched")) as dest:
        f = dest.open(report_folder(job, run_id) + f"{job}_completed_list.txt")
        text = f.read().decode()
        f.close()
    return sorted(unescape_field(line.split("\t")[0]) for line in text.splitlines())


def test_incremental_runs_take_each_window_once_and_stop_after_n(
    airflow,
    oss_server,
    testbed_root: Path,  # type: ignore[no-untyped-def]
) -> None:
    from sharelift.local.airflow import parse_time

    root = testbed_root / "inc-share"
    make(root, "a1.txt", b"a1")
    make(root, "a2.txt", b"a2")
    airflow.set_connection("sched_inc_src", "sharelift_local", extra={"path": str(root)})
    dag = "sharelift_migrate"
    airflow.wait_for_dag(dag, timeout=180)
    airflow.unpause(dag)
    airflow.trigger(
        dag,
        {
            "job_name": "inc-job",
            "source_conn_id": "sched_inc_src",
            "destination_conn_id": "sched_dst",
            "destination_prefix": "inc/",
            "migration_type": "incremental",
            "migration_interval_hours": 1,
            "migration_times": 3,
        },
    )
    (run1,) = wait_runs(airflow, dag, 1, "inc-job")
    make(root, "b1.txt", b"b1")  # lands in run 2's window
    run1, run2 = wait_runs(airflow, dag, 2, "inc-job")
    make(root, "a1.txt", b"a1 changed")  # a change lands in run 3's window
    make(root, "c1.txt", b"c1")
    run1, run2, run3 = wait_runs(airflow, dag, 3, "inc-job")
    assert [r["state"] for r in (run1, run2, run3)] == ["success"] * 3
    assert completed(oss_server, "inc-job", run1["dag_run_id"]) == ["inc/a1.txt", "inc/a2.txt"]
    assert completed(oss_server, "inc-job", run2["dag_run_id"]) == ["inc/b1.txt"]
    assert completed(oss_server, "inc-job", run3["dag_run_id"]) == ["inc/a1.txt", "inc/c1.txt"]
    # The interval counts from the end of the previous run's work: each next run was held
    # until at least one "hour" after the previous run's report.
    for before, after in ((run1, run2), (run2, run3)):
        report_at = report_written_at(oss_server, "inc-job", before["dag_run_id"])
        assert (parse_time(after["start_date"]) - report_at).total_seconds() >= HOUR
    time.sleep(2 * HOUR)
    assert len(runs_of(airflow, dag, "inc-job")) == 3  # N runs, then the job stays finished


def test_a_sync_job_repeats_every_period_never_overlaps_and_stops_when_paused(
    airflow,
    oss_server,
    testbed_root: Path,  # type: ignore[no-untyped-def]
) -> None:
    from sharelift.local.airflow import AirflowServer, parse_time

    root = testbed_root / "sync-share"
    make(root, "s1.txt", b"s1")
    airflow.set_connection("sched_sync_src", "sharelift_local", extra={"path": str(root)})
    dag = "sharelift_job_sync_job"
    airflow.wait_for_dag(dag, timeout=180)
    airflow.unpause(dag)
    first = wait_runs(airflow, dag, 1)
    make(root, "s2.txt", b"s2")
    runs = wait_runs(airflow, dag, len(first) + 2)
    assert all(r["state"] == "success" for r in runs)
    synced = [completed(oss_server, "sync-job", r["dag_run_id"]) for r in runs]
    assert synced[0] == ["sync/s1.txt"]
    assert ["sync/s2.txt"] in synced[1:]
    assert sum(len(s) for s in synced) == 2  # unchanged files are never copied again
    intervals = [(parse_time(r["start_date"]), parse_time(r["end_date"])) for r in runs]
    assert AirflowServer.max_overlap(intervals) == 1
    airflow.pause(dag)  # "Stopped"
    time.sleep(3)
    stopped_at = len(runs_of(airflow, dag))
    time.sleep(2 * HOUR)
    assert len(runs_of(airflow, dag)) == stopped_at
    history = subprocess.run(
        [sys.executable, "-m", "sharelift.cli", "runs", "sync-job"],
        env=airflow.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert history.count("Success") >= len(runs)
    airflow.unpause(dag)  # started again
    wait_runs(airflow, dag, stopped_at + 1)
