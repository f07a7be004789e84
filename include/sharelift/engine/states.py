"""How the job and run states map onto Airflow's (docs/states.md).

Shown to operators by ``sharelift runs`` and in every run's summary, so they can read an
Airflow run and know what the reference service would have called it.
"""

from __future__ import annotations

from typing import Any

# sharelift state -> where it shows in Airflow
STATE_MAPPING: dict[str, str] = {
    "Create Failed": "run failed at task plan, before its scan (an address is Invalid; the cause is in its log)",
    "Scanning": "run running, task plan scanning (files scanned so far in its log and in sharelift runs)",
    "Scan Finished": "run running, task plan partitioning (total count and size in its log)",
    "Migrating": "run running, copy instances running (one per subtask or group of subtasks, at most 20 at once)",
    "Completed": "run success (full/incremental: every file migrated, report written)",
    "Success": "run success (a sync run: every changed file synced)",
    "Failed": "run failed at task close (a file failed: report written, retry with retry_of=<run id>; or a step failed: the cause is recorded with the run)",
    "Stopped": "DAG paused (a sync or incremental job: unpause to start again)",
}


def run_state_mapping() -> dict[str, str]:
    return dict(STATE_MAPPING)


def number_runs(rows: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Each run with its number within its job (1 = the job's first run), in start order.

    Not the ``run_number`` column: that is a run's place in an incremental chain (1 to N),
    and every run of a full job has 1 there.
    """
    seen: dict[str, int] = {}
    numbered = []
    for row in sorted(rows, key=lambda r: r.get("started_at") or 0.0):
        seen[row["job"]] = seen.get(row["job"], 0) + 1
        numbered.append((seen[row["job"]], row))
    return numbered


def run_kind(row: dict[str, Any]) -> str:
    """``full``, ``incremental 2`` (its place in the chain), ``sync``; ``retry`` for a retry."""
    if row.get("retry_of"):
        return "retry"
    kind = str(row.get("migration_type") or "")
    if kind == "incremental" and row.get("run_number"):
        return f"incremental {row['run_number']}"
    return kind
