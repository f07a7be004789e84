"""What the ``sharelift`` commands share: the state database they open (by the rule of
``sharelift.config``) and the refusal of job and run names that do not exist."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sharelift.config import Config

if TYPE_CHECKING:
    from sharelift.engine.state import StateStore


class CliError(Exception):
    """A mistake on the command line: printed as one line, exit status 2, nothing changed."""


def add_state_url_option(parser: argparse.ArgumentParser, default: object = None) -> None:
    parser.add_argument(
        "--state-url",
        default=default,
        help="state database URL (default: $SHARELIFT_STATE_URL, else the Airflow connection "
        "sharelift_state, else SQLite in the work folder; `sharelift config` shows which)",
    )


def resolve(state_url: str | None) -> Config:
    from sharelift.airflow.state_connection import resolve_config

    return resolve_config(state_url)


def declared_job_names(folder: Path | None = None) -> list[str]:
    """The ``job_name`` of each declared job file, read without validating the file (the DAG
    folder's import errors do that) and without importing Airflow."""
    import yaml

    from sharelift.airflow.job_files import jobs_dir

    names = []
    folder = folder or jobs_dir()
    for path in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and isinstance(data.get("job_name"), str):
            names.append(data["job_name"])
    return names


def known_jobs(store: StateStore) -> list[str]:
    """Jobs with a recorded run, a declared job file, or a flow-control setting or lease."""
    from sharelift.engine.flow_control import jobs_with_flow_control

    recorded = {r["job"] for r in store.list_runs()}
    return sorted(recorded | set(declared_job_names()) | jobs_with_flow_control(store))


def require_job(store: StateStore, job: str, config: Config) -> None:
    """Refuse a job that the state database and the job files do not know."""
    jobs = known_jobs(store)
    if job in jobs:
        return
    listing = ", ".join(jobs) if jobs else "none"
    raise CliError(
        f"no job named {job!r}: it has no run in the state database "
        f"{config.state_url_for_display()} ({config.state_url_from}) and no declared job file. "
        f"Known jobs: {listing}. (`sharelift config` shows where sharelift looks.)"
    )


def require_run(store: StateStore, job: str, run_id: str) -> dict[str, Any]:
    row = store.get_run(job, run_id)
    if row is not None:
        return dict(row)
    recent = [r["run_id"] for r in store.list_runs(job)][-5:]
    listing = ", ".join(recent) if recent else "none"
    raise CliError(
        f"job {job} has no run {run_id!r}; its latest runs: {listing} (see `sharelift runs {job}`)"
    )


def load_run(state_url: str | None, job: str, run_id: str) -> dict[str, Any]:
    """A recorded run of a known job, read from the state database and the database closed
    again; ``CliError`` naming what exists otherwise."""
    config = resolve(state_url)
    store = open_store(config)
    try:
        require_job(store, job, config)
        return require_run(store, job, run_id)
    finally:
        store.close()


def fail(exc: Exception) -> int:
    print(f"sharelift: {exc}", file=sys.stderr)
    return 2


def open_store(config: Config) -> StateStore:
    """The state database, refusing to create a SQLite file that is not there: a command
    pointed at the wrong place says so instead of leaving an empty database behind."""
    from sqlalchemy.engine import make_url

    from sharelift.engine.state import StateStore

    url = make_url(config.state_url)
    database = url.database if url.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not Path(database).is_file():
        raise CliError(
            f"no state database at {database} ({config.state_url_from}): nothing has "
            "run with these settings. `sharelift config` shows where sharelift looks; set "
            "AIRFLOW_HOME (or SHARELIFT_STATE_URL / --state-url) to your deployment's."
        )
    return StateStore(config.state_url)
