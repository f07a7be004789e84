"""``sharelift retry JOB RUN_ID``: retry a failed run from the command line.

Triggers the run's own DAG with the run's own settings plus ``retry_of=RUN_ID``, through
the ``airflow`` CLI of this environment (the same as pressing Trigger with that param in
the UI). The new run migrates exactly the files of the failed run's error list.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from sharelift.cli_common import (
    CliError,
    add_state_url_option,
    fail,
    load_run,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Retry a failed run: trigger the run's own DAG through this environment's Airflow "
        "(AIRFLOW_HOME) with retry_of=RUN_ID. The new run migrates exactly the files of the "
        "failed run's error list; nothing already completed is copied again."
    )
    parser.add_argument("job", help="job name")
    parser.add_argument("run_id", help="the failed run's id (see `sharelift runs JOB`)")
    add_state_url_option(parser)
    parser.add_argument(
        "--print",
        action="store_true",
        dest="print_only",
        help="print the airflow command instead of running it",
    )


def retry_command(spec: dict[str, object], run_id: str) -> list[str]:
    from sharelift.airflow.setup_cli import airflow_executable

    params = dict(spec.get("params") or {})  # type: ignore[call-overload]
    params["retry_of"] = run_id
    params["run_number"] = 1
    return [
        airflow_executable(),
        "dags",
        "trigger",
        str(spec["dag_id"]),
        "--conf",
        json.dumps(params),
    ]


def run(args: argparse.Namespace) -> int:
    from sharelift.config import airflow_configured, airflow_home

    if not args.print_only and not airflow_configured():
        # Running `airflow` here would create a default home and database and then fail
        # with "Database migration required": say what is missing instead.
        return fail(
            CliError(
                f"no Airflow configuration at {airflow_home() / 'airflow.cfg'}: retry triggers "
                "the job's DAG through your Airflow deployment; set AIRFLOW_HOME to its home "
                "(or use --print to see the command)"
            )
        )
    try:
        row = load_run(args.state_url, args.job, args.run_id)
    except CliError as exc:
        return fail(exc)
    if row.get("state") != "Failed":
        print(
            f"sharelift: run {args.run_id} is {row.get('state')!r}, not Failed; retrying anyway "
            "migrates its error list (possibly empty)",
            file=sys.stderr,
        )
    if not row.get("spec"):
        return fail(CliError(f"run {args.run_id} has no recorded settings to retry with"))
    spec = json.loads(str(row["spec"]))
    if not spec.get("dag_id"):
        return fail(
            CliError(
                f"run {args.run_id} was made by the engine runner outside Airflow: there is no "
                "DAG to trigger; run the job again with run_job and retry_of set to this run id"
            )
        )
    cmd = retry_command(spec, args.run_id)
    if args.print_only:
        print(" ".join(cmd[:4]) + " --conf '" + cmd[5] + "'")
        return 0
    return subprocess.run(cmd).returncode
