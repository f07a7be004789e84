"""``sharelift runs [JOB]``: the history of runs, from the state database.

Shows each run's state (Scanning with the files scanned so far, Scan Finished with totals,
Completed/Success/Failed, Create Failed with the cause), its counts and where its report
is; ``--states`` prints how those states map onto Airflow's.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from sharelift.cli_common import (
    CliError,
    add_state_url_option,
    fail,
    open_store,
    require_job,
    resolve,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List the runs of every job (or of JOB) with their state, counts, cause and report "
        "location, oldest first."
    )
    parser.add_argument("job", nargs="?", help="only this job")
    add_state_url_option(parser)
    parser.add_argument(
        "--states", action="store_true", help="print how sharelift states map to Airflow's"
    )


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def run(args: argparse.Namespace) -> int:
    from sharelift.engine.states import number_runs, run_kind, run_state_mapping

    if args.states:
        for state, meaning in run_state_mapping().items():
            print(f"{state:14s} {meaning}")
        return 0
    config = resolve(args.state_url)
    try:
        store = open_store(config)
    except CliError as exc:
        return fail(exc)
    try:
        if args.job:
            require_job(store, args.job, config)
        rows = store.list_runs(args.job)
        if not rows:
            print(f"no runs recorded in {config.state_url_for_display()} ({config.state_url_from})")
            return 0
        print(
            f"{'job':20s} {'#':>3s} {'run':45s} {'type':14s} {'state':13s} {'started':19s} "
            f"{'scanned':>9s} {'to copy':>8s} {'copied':>7s} {'skipped':>7s} {'failed':>6s}"
        )
        for seq, r in number_runs(rows):
            counts = store.counts(r["job"], r["run_id"])
            print(
                f"{r['job'][:20]:20s} {seq:>3d} {r['run_id'][:45]:45s} {run_kind(r)[:14]:14s} "
                f"{r['state'][:13]:13s} {_when(r['started_at']):19s} "
                f"{r.get('files_scanned') or 0:>9d} {r.get('files_to_copy') or 0:>8d} "
                f"{counts.get('copied', (0, 0))[0]:>7d} {counts.get('skipped', (0, 0))[0]:>7d} "
                f"{counts.get('failed', (0, 0))[0]:>6d}"
            )
            if r.get("retry_of"):
                print(f"{'':24s} retry of: {r['retry_of']}")
            if r.get("message"):
                print(f"{'':24s} cause: {r['message']}")
            if r.get("report_url"):
                print(f"{'':24s} report: {r['report_url']}")
    except CliError as exc:
        return fail(exc)
    finally:
        store.close()
    return 0
