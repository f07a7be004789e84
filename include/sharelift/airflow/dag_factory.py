"""Building a migration DAG: the ad-hoc one (Params from the trigger form) and one per
declared job file. Parse-time work is limited to building the DAG object: no network,
no database, no file-system walk.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sharelift.airflow.job_schema import FORM_FIELDS, START_TIME_PATTERN
from sharelift.airflow.tasks import POOL_NAME, POOL_SLOTS

__all__ = ["START_TIME_PATTERN", "build_migration_dag", "migration_params"]

FAILED_TASK_STATES = ("failed",)  # not upstream_failed: those only followed the cause


def _failed_tasks(ctx: Any) -> list[str]:
    """The run's failed task ids, through the Task SDK (tasks cannot query Airflow's
    database themselves); empty when it cannot say."""
    try:
        states = ctx["ti"].get_task_states(ctx["dag"].dag_id, run_ids=[ctx["run_id"]])
    except Exception:  # noqa: BLE001 - only a better message is at stake
        return []
    per_run = states.get(ctx["run_id"], states) if isinstance(states, dict) else {}
    return sorted(
        str(task_id) for task_id, state in per_run.items() if str(state) in FAILED_TASK_STATES
    )


def migration_params(
    defaults: dict[str, Any] | None = None, *, locked: bool = False
) -> dict[str, Any]:
    """The trigger form, built from the job-settings table (``job_schema.FIELDS``) that also
    checks job files: types, bounds, enums, patterns and sections, and each field's rule
    written under it, so the form explains itself and refuses what a job file would.

    ``locked``: a declared job's name and addresses are fixed by its file (enum of one).
    """
    from airflow.sdk import Param

    d = defaults or {}
    params: dict[str, Any] = {}
    for spec in FORM_FIELDS:
        schema = spec.json_schema()
        if spec.name == "migration_type":
            # sync runs on a schedule, so only a job file can declare it
            schema["enum"] = (
                ["sync"] if d.get("migration_type") == "sync" else ["full", "incremental"]
            )
        if locked and spec.name in ("job_name", "source_conn_id", "destination_conn_id"):
            schema["enum"] = [d[spec.name]]
        default = d.get(spec.name, spec.default)
        if isinstance(default, list):
            default = list(default)  # never share the table's list between DAGs
        params[spec.name] = Param(default, description=spec.form_description(), **schema)
    return params


def build_migration_dag(
    dag_id: str,
    *,
    defaults: dict[str, Any] | None = None,
    description: str = "",
    tags: list[str] | None = None,
    locked: bool = False,
    schedule: Any = None,
    start_date: datetime | None = None,
    max_active_runs: int = 16,
) -> Any:
    """``schedule``/``start_date``/``max_active_runs`` serve sync jobs (a period, a start,
    and 1 run at a time when "do not start a new run while another is running" is on)."""
    from airflow.sdk import dag, get_current_context, task
    from airflow.task.trigger_rule import TriggerRule

    from sharelift.airflow import tasks as t

    @dag(
        dag_id=dag_id,
        description=description
        or "Migrate a file share into OSS: plan (check, scan, partition), copy, close "
        "(verify, report, finish).",
        schedule=schedule,
        start_date=start_date or datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=max_active_runs,
        params=migration_params(defaults, locked=locked),
        max_active_tasks=POOL_SLOTS + 8,
        tags=tags or ["sharelift"],
        doc_md=__doc__,
        on_failure_callback=t.record_failed_run,
    )
    def migration() -> None:
        @task
        def plan() -> list[dict[str, Any]]:
            # check, scan and partition in one task: one task start, not three. The job
            # and the scan's totals go to XCom under their own keys; the return value is
            # the list the copy task is mapped over.
            ctx = get_current_context()
            backfill = None
            if str(getattr(ctx["dag_run"], "run_type", "")).lower().endswith("backfill"):
                backfill = (ctx.get("data_interval_start"), ctx.get("data_interval_end"))
            planned = t.plan_step(
                dict(ctx["params"]), ctx["run_id"], dag_id=dag_id, backfill_window=backfill
            )
            ctx["ti"].xcom_push(key="job", value=planned.job)
            ctx["ti"].xcom_push(key="scan", value=planned.scan_summary)
            return planned.groups

        @task(
            pool=POOL_NAME,
            max_active_tis_per_dagrun=POOL_SLOTS,
            retries=2,
            map_index_template="subtask {{ subtask_label }}",
        )
        def copy(job: dict[str, Any], subtasks: dict[str, Any]) -> dict[str, int]:
            from sharelift.engine.partition import SubtaskGroup

            ctx = get_current_context()
            label = SubtaskGroup.from_dict(subtasks).label()
            ctx["subtask_label"] = label  # type: ignore[typeddict-unknown-key]
            return t.copy_step(job, ctx["run_id"], subtasks)

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def close(groups: list[Any] | None) -> dict[str, Any]:
            # verify, report, queue the next run, finish: one task start, not four. It runs
            # whatever failed before it (ALL_DONE); ``groups`` is None when ``plan`` failed.
            ctx = get_current_context()
            ti = ctx["ti"]
            planned = None
            if groups is not None:
                planned = (
                    ti.xcom_pull(task_ids="plan", key="job"),
                    ti.xcom_pull(task_ids="plan", key="scan"),
                )
            return t.close_step(
                dict(ctx["params"]),
                ctx["run_id"],
                dag_id=dag_id,
                planned=planned,
                failed_tasks=lambda: _failed_tasks(ctx),
            )

        groups = plan()
        job = groups["job"]  # type: ignore[index]  # the XCom plan pushed under "job"
        copied = copy.partial(job=job).expand(subtasks=groups)
        copied >> close(groups)

    return migration()
