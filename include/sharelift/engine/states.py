"""How the SPEC's job and run states map onto Airflow's (SPEC section 6).

Shown to operators by ``sharelift runs`` and in every run's summary, so they can read an
Airflow run and know what the reference service would have called it.
"""

from __future__ import annotations

# sharelift state -> where it shows in Airflow
STATE_MAPPING: dict[str, str] = {
    "Create Failed": "run failed at task check_addresses (an address is Invalid; the cause is in its log)",
    "Scanning": "run running, task scan running (files scanned so far in its log and in sharelift runs)",
    "Scan Finished": "run running, scan done (total count and size in its log)",
    "Migrating": "run running, copy instances running (one per subtask, at most 20 at once)",
    "Completed": "run success (full/incremental: every file migrated, report written)",
    "Success": "run success (a sync run: every changed file synced)",
    "Failed": "run failed at task finish (report written; retry with retry_of=<run id>)",
    "Stopped": "DAG paused (a sync or incremental job: unpause to start again)",
}


def run_state_mapping() -> dict[str, str]:
    return dict(STATE_MAPPING)
