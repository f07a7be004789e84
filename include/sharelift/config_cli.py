"""``sharelift config``: where sharelift looks, and why there (see ``sharelift.config``)."""

from __future__ import annotations

import argparse

from sharelift.cli_common import add_state_url_option, resolve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print the state database and work folder every sharelift command, DAG task and the "
        "UI page use here, and where each setting came from. Precedence: --state-url, "
        "$SHARELIFT_STATE_URL, the Airflow connection sharelift_state, SQLite in the work "
        "folder; work folder: $SHARELIFT_WORK_DIR, $AIRFLOW_HOME/sharelift, ~/airflow/sharelift."
    )
    add_state_url_option(parser)


def run(args: argparse.Namespace) -> int:
    from sharelift.config import airflow_configured, airflow_home

    cfg = airflow_home() / "airflow.cfg"
    print(resolve(args.state_url).describe())
    if airflow_configured():
        print(f"airflow:        {cfg} (the sharelift_state connection is consulted)")
    else:
        print(f"airflow:        no {cfg} (set AIRFLOW_HOME to use your deployment's settings)")
    return 0
