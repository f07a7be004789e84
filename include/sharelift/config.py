"""Where sharelift keeps its state: found by one rule, the same for every entry point.

The DAG tasks, every ``sharelift`` command, the UI page and the demo all call
:func:`resolve`, so a limit set with ``sharelift flow-control`` is the one the running copy
tasks read, and ``sharelift runs`` lists the runs the DAG recorded. First found wins:

state database
    1. an explicit URL (a command's ``--state-url``);
    2. ``$SHARELIFT_STATE_URL``;
    3. the Airflow connection ``sharelift_state`` (PostgreSQL or SQLite), read only where
       Airflow is configured (``$AIRFLOW_HOME/airflow.cfg`` exists, ``~/airflow`` without
       ``AIRFLOW_HOME``): looking Airflow up where it is not would make it write a default
       ``airflow.cfg`` and database into the user's home;
    4. SQLite at ``<work folder>/state.db``.

work folder (manifests, checkpoints, the default state database)
    1. ``$SHARELIFT_WORK_DIR``;
    2. ``$AIRFLOW_HOME/sharelift``;
    3. ``~/airflow/sharelift``.

The Airflow look-up is passed in (``connection_lookup``) so that this module stays free of
Airflow; ``sharelift.airflow.state_connection`` provides it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STATE_CONN_ID = "sharelift_state"

# conn_id -> (URI, host) of an Airflow connection, or None when there is no such connection.
ConnectionLookup = Callable[[str], tuple[str, str | None] | None]


@dataclass(frozen=True)
class Config:
    """The resolved settings and, for ``sharelift config`` and error messages, their origin."""

    state_url: str
    state_url_from: str
    work_dir: str
    work_dir_from: str

    def state_url_for_display(self) -> str:
        """The URL with any password masked (it may be a PostgreSQL URL with credentials)."""
        return display_url(self.state_url)

    def describe(self) -> str:
        return (
            f"state database: {self.state_url_for_display()} (from {self.state_url_from})\n"
            f"work folder:    {self.work_dir} (from {self.work_dir_from})"
        )


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"))


def airflow_configured() -> bool:
    """True where importing Airflow reads an existing configuration instead of creating one."""
    return (airflow_home() / "airflow.cfg").is_file()


def work_dir() -> tuple[str, str]:
    if os.environ.get("SHARELIFT_WORK_DIR"):
        return os.environ["SHARELIFT_WORK_DIR"], "$SHARELIFT_WORK_DIR"
    if os.environ.get("AIRFLOW_HOME"):
        return os.path.join(os.environ["AIRFLOW_HOME"], "sharelift"), "$AIRFLOW_HOME/sharelift"
    return os.path.join(
        os.path.expanduser("~/airflow"), "sharelift"
    ), "default: ~/airflow/sharelift"


def with_driver(url: str) -> str:
    """PostgreSQL URLs without a driver get psycopg2, the one sharelift installs: SQLAlchemy
    2.1 would otherwise pick psycopg 3 for ``postgresql://``."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def state_url_from_connection(uri: str, host: str | None) -> str:
    """A SQLAlchemy URL from an Airflow connection's URI (Airflow writes ``postgres://``,
    and keeps a SQLite file's path in ``host``)."""
    if uri.startswith("sqlite://") and host:
        return f"sqlite:///{host}"
    return with_driver(uri)


def resolve(
    state_url: str | None = None, connection_lookup: ConnectionLookup | None = None
) -> Config:
    folder, folder_from = work_dir()
    if state_url:
        return Config(state_url, "--state-url", folder, folder_from)
    if os.environ.get("SHARELIFT_STATE_URL"):
        return Config(
            os.environ["SHARELIFT_STATE_URL"], "$SHARELIFT_STATE_URL", folder, folder_from
        )
    if connection_lookup is not None:
        found = connection_lookup(STATE_CONN_ID)
        if found is not None:
            return Config(
                state_url_from_connection(*found),
                f"Airflow connection {STATE_CONN_ID}",
                folder,
                folder_from,
            )
    default = f"sqlite:///{os.path.join(folder, 'state.db')}"
    return Config(default, "default: SQLite in the work folder", folder, folder_from)


def display_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can parse: show nothing secret
        return url.split("@")[-1] if "@" in url else url
