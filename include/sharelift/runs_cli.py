"""``sharelift runs [JOB]``: the history of runs, from the state database.

Shows each run's sharelift state (SPEC section 6: Scanning with the files scanned so far,
Scan Finished with totals, Completed/Success/Failed, Create Failed with the cause), its
counts and where its report is; ``--states`` prints how those states map onto Airflow's.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime


def default_state_url() -> str:
    if os.environ.get("SHARELIFT_STATE_URL"):
        return os.environ["SHARELIFT_STATE_URL"]
    home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
    work = os.environ.get("SHARELIFT_WORK_DIR", os.path.join(home, "sharelift"))
    return f"sqlite:///{os.path.join(work, 'state.db')}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", nargs="?", help="only this job")
    parser.add_argument(
        "--state-url",
        default=None,
        help="state database URL (default: $SHARELIFT_STATE_URL or sqlite in $SHARELIFT_WORK_DIR)",
    )
    parser.add_argument(
        "--states", action="store_true", help="print how sharelift states map to Airflow's"
    )


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def run(args: argparse.Namespace) -> int:
    from sharelift.engine.state import StateStore
    from sharelift.engine.states import run_state_mapping

    if args.states:
        for state, meaning in run_state_mapping().items():
            print(f"{state:14s} {meaning}")
        return 0
    store = StateStore(args.state_url or default_state_url())
    rows = store.list_runs(args.job)
    if not rows:
        print("no runs recorded" + (f" for job {args.job}" if args.job else ""))
        return 0
    print(
        f"{'job':20s} {'run':45s} {'type':11s} {'#':>2s} {'state':13s} {'started':19s} "
        f"{'scanned':>9s} {'to copy':>8s} {'copied':>7s} {'skipped':>7s} {'failed':>6s}"
    )
    for r in rows:
        counts = store.counts(r["job"], r["run_id"])
        print(
            f"{r['job'][:20]:20s} {r['run_id'][:45]:45s} {r['migration_type'] or '':11s} "
            f"{r.get('run_number') or 1:>2d} {r['state'][:13]:13s} {_when(r['started_at']):19s} "
            f"{r.get('files_scanned') or 0:>9d} {r.get('files_to_copy') or 0:>8d} "
            f"{counts.get('copied', (0, 0))[0]:>7d} {counts.get('skipped', (0, 0))[0]:>7d} "
            f"{counts.get('failed', (0, 0))[0]:>6d}"
        )
        if r.get("message"):
            print(f"{'':20s} cause: {r['message']}")
        if r.get("report_url"):
            print(f"{'':20s} report: {r['report_url']}")
    store.close()
    return 0
