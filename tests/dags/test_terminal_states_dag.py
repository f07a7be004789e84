"""Through ``dag.test()``: a run that cannot go on ends Create Failed or Failed with its
cause in the state database (what ``sharelift runs`` and the UI show), and the steps after
the failure (verify, report) do not run on what is not there: ``close`` gives the verdict."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest


def set_connection(conn_id: str, **fields: object) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)


@pytest.fixture
def local_job(tmp_path: Path) -> tuple[Path, Path]:
    src, dst = tmp_path / "src", tmp_path / "bucket"
    for i in range(6):
        (src / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 2}" / f"f{i}.txt").write_bytes(f"data {i}".encode())
    dst.mkdir()
    set_connection("end_src", conn_type="sharelift_local", extra={"path": str(src)})
    set_connection("end_dst", conn_type="sharelift_local_bucket", extra={"path": str(dst)})
    return src, dst


def run(dagbag, job_name: str, **conf: object):  # type: ignore[no-untyped-def]
    params = {
        "job_name": job_name,
        "source_conn_id": "end_src",
        "destination_conn_id": "end_dst",
        "destination_prefix": "to/",
    }
    params.update(conf)
    dag = dagbag.get_dag("sharelift_migrate")
    # ``dag.test`` leaves the run's conf in the DAG's (and its tasks') params: a later test
    # of the session would run with this one's ``retry_of``.
    saved = copy.deepcopy(dag.params)
    saved_tasks = {task.task_id: copy.deepcopy(task.params) for task in dag.tasks}
    try:
        return dag.test(run_conf=params)
    finally:
        dag.params = saved
        for task in dag.tasks:
            task.params = saved_tasks[task.task_id]


def task_states(dr: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def recorded(job: str, run_id: str) -> dict[str, Any]:
    from sharelift.airflow.state_connection import resolve_config
    from sharelift.engine.state import StateStore

    state = StateStore(resolve_config().state_url)
    try:
        return state.get_run(job, run_id) or {}
    finally:
        state.close()


def test_after_create_failed_verify_and_report_skip_and_the_cause_is_recorded(
    dagbag, local_job
) -> None:  # type: ignore[no-untyped-def]
    src, dst = local_job
    dr = run(dagbag, "end-create-failed", source_conn_id="no_such_conn")
    assert dr.state == "failed"
    states = task_states(dr)
    assert (states["plan"], states["copy"], states["close"]) == (
        "failed",
        "upstream_failed",
        "failed",
    )
    assert list(dst.iterdir()) == []  # no report: verify and report did not run
    row = recorded("end-create-failed", dr.run_id)
    assert row["state"] == "Create Failed"
    assert "no_such_conn" in row["message"]


def test_a_retry_of_an_unknown_run_ends_failed_with_the_cause(dagbag, local_job) -> None:  # type: ignore[no-untyped-def]
    src, dst = local_job
    dr = run(dagbag, "end-unknown-retry", retry_of="no-such-run")
    assert dr.state == "failed"
    states = task_states(dr)
    assert (states["plan"], states["close"]) == ("failed", "failed")
    row = recorded("end-unknown-retry", dr.run_id)
    assert row["state"] == "Failed"
    assert row["message"].startswith("scan failed: ")
    assert "no-such-run" in row["message"]
    assert not (dst / "to").exists()


def test_a_run_whose_step_died_without_a_cause_is_ended_failed_by_close(
    dagbag, local_job, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A task whose worker died records nothing (no ``except`` runs): ``close`` ends the run."""
    from sharelift.engine import steps

    def dies_silently(run: steps.RunContext, **_: Any) -> Any:
        raise SystemExit(1)  # not an Exception: nothing records it, as with a killed worker

    monkeypatch.setattr(steps, "scan", dies_silently)
    dr = run(dagbag, "end-died")
    assert dr.state == "failed"
    states = task_states(dr)
    assert (states["plan"], states["close"]) == ("failed", "failed")
    row = recorded("end-died", dr.run_id)
    assert row["state"] == "Failed"
    assert row["message"].startswith("the run did not finish: task(s) plan")
    assert row["finished_at"] is not None


def test_the_dags_failure_callback_ends_a_run_left_in_a_step_and_keeps_an_ended_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net for a run whose ``close`` never ran (marked failed by hand, say)."""
    from sharelift.airflow.tasks import record_failed_run
    from sharelift.engine.state import StateStore

    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("SHARELIFT_STATE_URL", url)
    state = StateStore(url)
    try:
        state.upsert_run("cb-job", "left", state="Migrating")
        state.upsert_run("cb-job", "ended", state="Failed", message="2 file(s) failed")
        for run_id in ("left", "ended"):
            record_failed_run(
                {"params": {"job_name": "cb-job"}, "run_id": run_id, "reason": "task_failure"}
            )
        left, ended = state.get_run("cb-job", "left"), state.get_run("cb-job", "ended")
    finally:
        state.close()
    assert left is not None and ended is not None
    assert (left["state"], left["message"]) == ("Failed", "the run did not finish: task_failure")
    assert (ended["state"], ended["message"]) == ("Failed", "2 file(s) failed")
