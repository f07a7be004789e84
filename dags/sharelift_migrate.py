"""Ad-hoc migration: trigger with Params from the UI, REST or CLI (docs/jobs.md).

Wiring only: the DAG is built by ``sharelift.airflow.dag_factory``; nothing here touches
the network, a database or the file system at import time.
"""

from sharelift.airflow.dag_factory import build_migration_dag

dag = build_migration_dag(
    "sharelift_migrate",
    description="Ad-hoc migration of a file share into OSS (full or incremental).",
    tags=["sharelift", "ad-hoc"],
)
