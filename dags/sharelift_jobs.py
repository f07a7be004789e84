"""Declared jobs: each YAML file in the jobs folder becomes its own DAG.

Wiring only. A bad job file becomes an import error of this file naming the job file,
the field and the rule (see ``sharelift.airflow.job_files``).
"""

from sharelift.airflow.dag_factory import build_migration_dag
from sharelift.airflow.job_files import load_all

for _dag_id, _settings in load_all().items():
    globals()[_dag_id] = build_migration_dag(
        _dag_id,
        defaults=_settings,
        description=_settings.get("description") or f"Declared job {_settings['job_name']}",
        tags=["sharelift", "declared", *(_settings.get("tags") or [])],
        locked=True,
    )
