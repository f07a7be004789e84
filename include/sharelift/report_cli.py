"""``sharelift report JOB RUN_ID``: store a run's report again.

When the bucket refused the report (after retries: a 403 on PUT, a 503 that would not
pass), the run ended Failed with that cause and its lists stayed where they are kept: the
per-file outcomes in the state database, the scan's list in the work folder. This builds
the three lists and the summary from them again and stores them in the bucket, through
the run's own destination connection (the Airflow connection its recorded settings name,
looked up as the UI does), then records the state the report gives (Completed, Success,
or Failed when files failed).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sharelift.cli_common import (
    CliError,
    add_state_url_option,
    fail,
    load_run,
    resolve,
)

STILL_GOING = ("Scanning", "Scan Finished", "Migrating")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Store a run's report (the total, completed and error lists and the summary) in its "
        "bucket again, built from the state database: for a run whose report the bucket "
        "refused. Uses the Airflow connections the run's settings name (AIRFLOW_HOME)."
    )
    parser.add_argument("job", help="job name")
    parser.add_argument("run_id", help="the run's id (see `sharelift runs JOB`)")
    add_state_url_option(parser)


def _connection(conn_id: str, field: str) -> Any:
    from airflow.models.connection import Connection

    try:
        return Connection.get_connection_from_secrets(conn_id)
    except Exception:  # noqa: BLE001 - Airflow raises its own not-found types
        raise CliError(
            f"the run's {field} connection {conn_id!r} is not defined in this Airflow "
            "environment (AIRFLOW_HOME, AIRFLOW_CONN_* variables)"
        ) from None


def run(args: argparse.Namespace) -> int:
    from sharelift.airflow import connections
    from sharelift.engine import steps
    from sharelift.engine.jobs import JobSpec
    from sharelift.engine.report import format_summary
    from sharelift.errors import ShareliftError

    config = resolve(args.state_url)
    try:
        row = load_run(args.state_url, args.job, args.run_id)
    except CliError as exc:
        return fail(exc)
    if row.get("state") in STILL_GOING:
        return fail(
            CliError(
                f"run {args.run_id} is still {row['state']!r}: its report is written when it "
                "ends (a run whose worker died is ended by its close task)"
            )
        )
    spec = json.loads(str(row.get("spec") or "{}"))
    if not spec.get("job"):
        return fail(
            CliError(
                f"run {args.run_id} has no recorded settings (it ended "
                f"{row.get('state')!r} before its scan): there is no list to report"
            )
        )
    job = JobSpec.from_dict(spec["job"])
    prefix = (spec.get("params") or {}).get("destination_prefix")
    try:
        source = connections.source_address(_connection(job.source, "source"), job.source_path)
        destination = connections.destination_address(
            _connection(job.destination, "destination"), prefix
        )
        with steps.open_run(
            job,
            args.run_id,
            source,
            destination,
            work_dir=config.work_dir,
            state_url=config.state_url,
        ) as ctx:
            summary = steps.report_again(ctx)
    except (CliError, ShareliftError) as exc:
        return fail(exc)
    print(format_summary(summary), end="")
    return 0
