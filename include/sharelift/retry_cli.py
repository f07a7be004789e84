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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job name")
    parser.add_argument("run_id", help="the failed run's id (see `sharelift runs JOB`)")
    parser.add_argument("--state-url", default=None, help="state database URL")
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
    from sharelift.engine.state import StateStore
    from sharelift.runs_cli import default_state_url

    store = StateStore(args.state_url or default_state_url())
    row = store.get_run(args.job, args.run_id)
    store.close()
    if row is None:
        print(
            f"sharelift: job {args.job} has no run {args.run_id!r} (see `sharelift runs {args.job}`)",
            file=sys.stderr,
        )
        return 2
    failed = row.get("state") == "Failed"
    if not failed:
        print(
            f"sharelift: run {args.run_id} is {row.get('state')!r}, not Failed; retrying anyway "
            "migrates its error list (possibly empty)",
            file=sys.stderr,
        )
    if not row.get("spec"):
        print("sharelift: the run has no recorded settings to retry with", file=sys.stderr)
        return 2
    cmd = retry_command(json.loads(row["spec"]), args.run_id)
    if args.print_only:
        print(" ".join(cmd[:4]) + " --conf '" + cmd[5] + "'")
        return 0
    return subprocess.run(cmd).returncode
