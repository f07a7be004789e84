"""Declared jobs: each YAML file in the jobs folder becomes its own DAG.

Wiring only. A bad job file becomes an import error of this file naming the job file,
the field and the rule (see ``sharelift.airflow.job_files``). Sync jobs get a schedule
(their period) and, with "do not start a new run while another is running", one active
run at a time; pausing the DAG stops the job, unpausing starts it again.
"""

from datetime import UTC, datetime

from sharelift.airflow.dag_factory import build_migration_dag
from sharelift.airflow.job_files import load_all

for _dag_id, _settings in load_all().items():
    _schedule = _settings.pop("_schedule", None)
    _start = _settings.pop("_start_date", None)
    if _schedule is not None and _start is None:
        # "Immediately": the first period starts when the DAG is first unpaused.
        _start = datetime(2024, 1, 1, tzinfo=UTC)
    globals()[_dag_id] = build_migration_dag(
        _dag_id,
        defaults=_settings,
        description=_settings.get("description") or f"Declared job {_settings['job_name']}",
        tags=[
            "sharelift",
            "declared",
            _settings.get("migration_type", "full"),
            *(_settings.get("tags") or []),
        ],
        locked=True,
        schedule=_schedule,
        start_date=_start,
        max_active_runs=_settings.pop("_max_active_runs", 16),
    )
