"""Through ``dag.test()``: the closing task of an incremental run queues the next run (its
number in the conf, held until the interval has passed), also when the run fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.dags.test_terminal_states_dag import local_job, run  # noqa: F401 - fixture

INCREMENTAL = {"migration_type": "incremental", "migration_times": 3}


def queued_after(dr: Any) -> list[dict[str, Any]]:
    """The conf of every run of the DAG queued by ``dr`` (its job, not yet started)."""
    from airflow.models.dagrun import DagRun

    job = dr.conf["job_name"]
    runs = DagRun.find(dag_id=dr.dag_id)
    confs = [r.conf or {} for r in runs if r.run_id != dr.run_id]
    return [c for c in confs if c.get("job_name") == job]


def test_an_incremental_run_queues_the_next_one_numbered_in_its_conf(
    dagbag,
    local_job: tuple[Path, Path],  # noqa: F811
) -> None:  # type: ignore[no-untyped-def]
    dr = run(dagbag, "inc-queues", **INCREMENTAL)
    assert dr.state == "success"
    (conf,) = queued_after(dr)
    assert (conf["run_number"], conf["migration_times"]) == (2, 3)


def test_a_failed_incremental_run_still_queues_the_next_one(
    dagbag,
    local_job: tuple[Path, Path],  # noqa: F811
) -> None:  # type: ignore[no-untyped-def]
    dr = run(dagbag, "inc-fails", source_conn_id="no_such_conn", **INCREMENTAL)
    assert dr.state == "failed"
    (conf,) = queued_after(dr)
    assert conf["run_number"] == 2


def test_a_full_run_queues_nothing(dagbag, local_job: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    dr = run(dagbag, "full-queues-nothing")
    assert dr.state == "success"
    assert queued_after(dr) == []
