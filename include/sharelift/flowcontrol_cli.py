"""``sharelift flow-control set|show|clear JOB``: a job's bandwidth limit, changed live.

The setting is stored in the state database, where every running copy task of the job
re-reads it each second: a change applies to a running job within about a second (two
at most when the job had no setting before), without stopping it. See
``sharelift.engine.flow_control`` for the rules and how the limit is shared.

Examples::

    sharelift flow-control set my-job "08:00-18:00=10,18:00-08:00=50" --timezone Asia/Shanghai
    sharelift flow-control show my-job
    sharelift flow-control clear my-job

Times are in the time zone stored with the setting: ``--timezone`` (IANA name), UTC when
not given. Limits are in MB/s (10**6 bytes) for the whole job, summed over its running
subtasks; outside every range the job is unthrottled. Invalid input changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

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
        "A job's bandwidth limit (MB/s for the whole job) by time of day, applied to running "
        "jobs within seconds. Outside every range the job is unthrottled."
    )
    add_state_url_option(parser)
    actions = parser.add_subparsers(dest="action", required=True)
    set_p = actions.add_parser("set", help="set (replace) the job's limits by time of day")
    set_p.add_argument("job", help="job name")
    set_p.add_argument(
        "rules",
        help='comma-separated HH:MM-HH:MM=MB/s entries, e.g. "08:00-18:00=10,18:00-08:00=50"; '
        "an end before the start crosses midnight; outside every range: unthrottled",
    )
    set_p.add_argument(
        "--new-job",
        action="store_true",
        help="the job has not run yet: set its limit ahead of its first run "
        "(without this, an unknown job name is refused)",
    )
    set_p.add_argument(
        "--timezone",
        default="UTC",
        help="IANA time zone the times are in, stored with the setting (default: UTC)",
    )
    show_p = actions.add_parser("show", help="the job's limits, the one in effect, its subtasks")
    show_p.add_argument("job", help="job name")
    clear_p = actions.add_parser("clear", help="remove the job's limits (unthrottled)")
    clear_p.add_argument("job", help="job name")
    for p in (set_p, show_p, clear_p):
        # SUPPRESS: given after the action it wins, before it the parent's value stays.
        add_state_url_option(p, argparse.SUPPRESS)


def _mb(rate: float | None) -> str:
    return "unthrottled" if rate is None else f"{rate / 1e6:.2f} MB/s"


def show(store: object, job: str) -> None:
    from sharelift.engine.flow_control import (
        get_flow_control,
        running_subtasks,
        setting_updated_at,
    )

    setting = get_flow_control(store, job)  # type: ignore[arg-type]
    if setting is None:
        print(f"job {job}: no flow control (unthrottled)")
    else:
        now = datetime.now(UTC)
        local = now.astimezone(ZoneInfo(setting.timezone))
        current = setting.rule_at(now)
        updated = setting_updated_at(store, job)  # type: ignore[arg-type]
        print(f"job {job}: flow control {setting.text!r}")
        print(f"  time zone: {setting.timezone} (now {local:%Y-%m-%d %H:%M} there)")
        for rule in setting.rules:
            notes = []
            if rule.crosses_midnight:
                notes.append("crosses midnight")
            if rule == current:
                notes.append("IN EFFECT NOW")
            suffix = f"  ({', '.join(notes)})" if notes else ""
            print(
                f"  {rule.text.split('=')[0]:11s}  {rule.mb_per_s:g} MB/s for the whole job{suffix}"
            )
        print("  outside these ranges: unthrottled")
        print(f"  now: {'unthrottled' if current is None else f'{current.mb_per_s:g} MB/s'}")
        if updated:
            print(f"  updated: {datetime.fromtimestamp(updated, UTC):%Y-%m-%d %H:%M:%S} UTC")
    leases = running_subtasks(store, job)  # type: ignore[arg-type]
    if leases:
        total = sum(r["rate"] for r in leases if r["rate"] is not None)
        throttled = all(r["rate"] is not None for r in leases)
        print(
            f"  running subtasks: {len(leases)}"
            + (f", allowed {total / 1e6:.2f} MB/s in sum" if throttled else "")
        )
        for r in leases:
            print(
                f"    run {r['run_id']} subtask {r['subtask']} on {r['worker']}: {_mb(r['rate'])}"
            )
    else:
        print("  running subtasks: none")


def run(args: argparse.Namespace) -> int:
    from sharelift.engine.flow_control import FlowControl, clear_flow_control, set_flow_control
    from sharelift.engine.jobs import validate_job_name
    from sharelift.errors import ConfigError

    try:
        job = validate_job_name(args.job)
        setting = FlowControl.parse(args.rules, args.timezone) if args.action == "set" else None
    except ConfigError as exc:
        # Validated before the database is opened: bad input changes nothing.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = resolve(args.state_url)
    new_job = args.action == "set" and args.new_job
    try:
        if new_job:
            from sharelift.engine.state import StateStore

            store = StateStore(config.state_url)
        else:
            store = open_store(config)
    except CliError as exc:
        return fail(exc)
    try:
        if not new_job:
            require_job(store, job, config)
        if args.action == "set":
            assert setting is not None
            set_flow_control(store, job, setting)
            print(
                f"job {job}: flow control set to {setting.text!r} (times in {setting.timezone}) "
                f"in {config.state_url_for_display()}; running subtasks apply it within seconds"
            )
            show(store, job)
        elif args.action == "clear":
            if clear_flow_control(store, job):
                print(f"job {job}: flow control cleared (unthrottled from now on)")
            else:
                print(f"job {job}: had no flow control (unthrottled)")
        else:
            show(store, job)
    except CliError as exc:
        return fail(exc)
    finally:
        store.close()
    return 0
