"""Declared jobs: one YAML file per job, each becoming its own DAG.

Why files: jobs that run for weeks (sync, incremental) belong in version control, reviewed
like code, rather than only in a trigger form. The file holds the same settings as the
ad-hoc DAG's Params and is validated when the DAG folder is parsed, with errors that name
the file, the field and the rule. Secrets never go in these files: they name connections.

Where: ``$SHARELIFT_JOBS_DIR`` if set, else ``include/jobs/`` beside the package (the
Astronomer project layout ships ``include/`` to every worker).

Example (``include/jobs/finance-share.yaml``)::

    job_name: finance-share
    source_conn_id: finance_smb
    source_path: reports
    destination_conn_id: oss_archive
    destination_prefix: finance/
    migration_type: full
    start_time: All
    subtask_file_count: 1000
    subtask_file_size_mb: 1024
    exclude: ["*.tmp", "~$*"]
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any

from sharelift.airflow.job_schema import FILE_FIELDS
from sharelift.errors import ConfigError

ALLOWED_KEYS = frozenset(spec.name for spec in FILE_FIELDS)
SYNC_PERIOD_RE = re.compile(r"^\s*(\d+)\s*(h|hours?|d|days?|w|weeks?)\s*$", re.I)
REQUIRED_KEYS = tuple(spec.name for spec in FILE_FIELDS if spec.required)


class JobFileError(ConfigError):
    """A declared job file is invalid; the message names the file, the field and the rule."""

    def __init__(self, path: Path, field: str, rule: str) -> None:
        self.path = path
        super().__init__(field, rule)
        self.args = (f"{path.name}: {field}: {rule}",)

    def __str__(self) -> str:
        return str(self.args[0])


def jobs_dir() -> Path:
    env = os.environ.get("SHARELIFT_JOBS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "jobs"


def dag_id_for(job_name: str) -> str:
    return "sharelift_job_" + job_name.replace("-", "_")


def load_job_file(path: Path) -> dict[str, Any]:
    """Parse and validate one job file; returns the Params defaults for its DAG.

    Each setting is checked by its row of the job-settings table, the one the trigger form
    is built from (``job_schema.FIELDS``): same bounds, same messages."""
    import yaml

    from sharelift.airflow.job_params import job_from_params

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise JobFileError(path, "yaml", f"is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise JobFileError(path, "yaml", "must be a mapping of settings (key: value)")
    unknown = sorted(set(data) - ALLOWED_KEYS)
    if unknown:
        raise JobFileError(
            path, unknown[0], f"unknown setting; allowed: {', '.join(sorted(ALLOWED_KEYS))}"
        )
    for key in REQUIRED_KEYS:
        if not data.get(key):
            raise JobFileError(path, key, "is required")
    if path.stem != data["job_name"]:
        raise JobFileError(path, "job_name", f"must match the file name ({path.stem!r})")
    if isinstance(data.get("start_time"), date):
        data["start_time"] = str(data["start_time"])  # YAML reads an unquoted date as a date
    for spec in FILE_FIELDS:
        if spec.name not in data:
            continue
        if data[spec.name] is None and not spec.nullable:
            del data[spec.name]  # "key:" with nothing after it: the default
            continue
        try:
            data[spec.name] = spec.check_value(data[spec.name])
        except ConfigError as exc:
            raise JobFileError(path, exc.field, exc.rule) from None
    kind = data.get("migration_type", "full")
    sync_keys = {"sync_period", "sync_start", "sync_no_overlap"} & set(data)
    if kind != "sync" and sync_keys:
        raise JobFileError(path, sorted(sync_keys)[0], "only applies to migration_type: sync")
    if kind == "sync":
        data["_schedule"] = parse_sync_period(path, data.get("sync_period"))
        data["_start_date"] = parse_sync_start(path, data.get("sync_start", "immediately"))
        data["_max_active_runs"] = 1 if data.get("sync_no_overlap", True) else 16
    try:
        job_from_params(data)
    except ConfigError as exc:
        raise JobFileError(path, exc.field, exc.rule) from None
    except (TypeError, ValueError) as exc:
        raise JobFileError(path, "value", str(exc)) from None
    return data


def parse_sync_period(path: Path, value: Any) -> Any:
    """'6h', '2 days', '1w' -> timedelta (a number of hours, days or weeks)."""
    from datetime import timedelta

    m = SYNC_PERIOD_RE.match(str(value or ""))
    if not m or int(m.group(1)) < 1:
        raise JobFileError(
            path,
            "sync_period",
            f"must be a number of hours, days or weeks like 6h, 2d, 1w (got {value!r})",
        )
    from sharelift.airflow.next_run import hour_seconds

    n, unit = int(m.group(1)), m.group(2)[0].lower()
    hours = {"h": n, "d": 24 * n, "w": 24 * 7 * n}[unit]
    return timedelta(seconds=hours * hour_seconds())


def parse_sync_start(path: Path, value: Any) -> Any:
    """'immediately' (the DAG starts when unpaused) or a date-time for the first run."""
    from datetime import UTC, datetime

    if value in (None, "", "immediately", "Immediately"):
        return None
    try:
        dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        raise JobFileError(
            path, "sync_start", f"must be 'immediately' or an ISO date-time (got {value!r})"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def load_all(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every ``*.yaml``/``*.yml`` job file in ``folder``, by DAG id; all errors at once."""
    folder = folder or jobs_dir()
    if not folder.is_dir():
        return {}
    jobs: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            data = load_job_file(path)
        except JobFileError as exc:
            errors.append(str(exc))
            continue
        jobs[dag_id_for(data["job_name"])] = data
    if errors:
        raise ConfigError("job files", f"invalid job file(s) in {folder}: " + "; ".join(errors))
    return jobs
