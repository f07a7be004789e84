"""The ``sharelift_state`` connection, looked up where each entry point runs.

Airflow 3 offers two look-ups with different reach: inside a task the Task SDK's
``BaseHook`` asks the api-server (the metadata database is off limits there); outside a
task (the ``sharelift`` commands, the UI page in the api-server) only
``airflow.models.Connection`` also reads connections stored in the metadata database, the
SDK's fallback chain seeing environment variables and external secret backends alone.
"""

from __future__ import annotations

import sys

from sharelift.config import Config, airflow_configured, resolve


def _in_task() -> bool:
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:
        return False
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def lookup(conn_id: str) -> tuple[str, str | None] | None:
    if _in_task():
        from airflow.sdk import BaseHook

        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception:  # noqa: BLE001 - Airflow raises its own not-found types
            return None
        return conn.get_uri(), conn.host
    from airflow.models.connection import Connection

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except Exception:  # noqa: BLE001 - not found, or no metadata database
        return None
    return conn.get_uri(), conn.host


def resolve_config(state_url: str | None = None) -> Config:
    """:func:`sharelift.config.resolve`, consulting the Airflow connection where Airflow is
    configured: always in tasks and the UI (Airflow is loaded), in a shell only where an
    Airflow home with an ``airflow.cfg`` exists."""
    configured = "airflow.configuration" in sys.modules or airflow_configured()
    return resolve(state_url, lookup if configured else None)
