"""``sharelift cleanup JOB --older-than 24h [--dry-run]``: remove a job's leftovers.

A big file goes up in parts; until the upload is completed or aborted its parts take space
in the bucket (and are billed) without any object showing them. A file that fails for good
aborts its own upload, and a killed worker's upload is resumed by the next run; what is left
anyway (an abort the bucket did not answer, a job never run again) is removed here: the
job's incomplete multipart uploads under its prefix and its checkpoint files, when older
than the given age. An upload whose checkpoint recorded a part more recently is still being
written and is kept, whatever its start time.

The destination is the job's latest run's (its recorded connection id and prefix, looked
up among the Airflow connections of this environment), or ``--destination-conn-id``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sharelift.cli_common import (
    CliError,
    add_state_url_option,
    fail,
    open_store,
    require_job,
    resolve,
)

if TYPE_CHECKING:
    from sharelift.addresses import DestinationAddress
    from sharelift.storage import Destination

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

now: Callable[[], float] = time.time  # the clock (tests move it)


class Age(float):
    """Seconds, remembering how they were written (``24h``) for the summary line."""

    text: str


def age(text: str) -> Age:
    """``90s``, ``30m``, ``24h``, ``7d`` -> seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an age: a whole number and a unit s, m, h or d (e.g. 24h, 7d)"
        )
    seconds = Age(int(m.group(1)) * UNITS[m.group(2)])
    seconds.text = m.group(1) + m.group(2)
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Remove a job's leftovers older than an age: incomplete multipart uploads under its "
        "destination prefix (parts stored, no object) and upload checkpoint files. Prints "
        "what it removed; --dry-run only lists."
    )
    parser.add_argument("job", help="job name")
    parser.add_argument(
        "--older-than",
        type=age,
        required=True,
        metavar="AGE",
        help="only what was started (uploads) or last written (checkpoints) at least this "
        "long ago: 90s, 30m, 24h, 7d",
    )
    parser.add_argument("--dry-run", action="store_true", help="list only, remove nothing")
    parser.add_argument(
        "--destination-conn-id",
        help="the destination's Airflow connection (default: the one the job's latest run used)",
    )
    parser.add_argument(
        "--prefix",
        help="the destination prefix (default: the latest run's, else the connection's)",
    )
    add_state_url_option(parser)


@dataclass(frozen=True)
class Target:
    conn_id: str
    prefix: str | None  # None: the connection's own


def target_of(runs: list[dict[str, Any]], conn_id: str | None, prefix: str | None) -> Target:
    """Which destination the job wrote to, by its latest run's recorded settings."""
    spec: dict[str, Any] = {}
    if runs and runs[-1].get("spec"):
        spec = json.loads(str(runs[-1]["spec"]))
    params = spec.get("params") or {}
    job = spec.get("job") or {}
    chosen = conn_id or params.get("destination_conn_id") or job.get("destination")
    if not chosen:
        raise CliError(
            "the job's latest run records no destination connection: give --destination-conn-id"
        )
    if prefix is None:
        prefix = params.get("destination_prefix") or job.get("destination_prefix") or None
    return Target(str(chosen), prefix)


def address_of(target: Target) -> DestinationAddress:
    """The destination address from this environment's Airflow connection."""
    from airflow.models.connection import Connection

    from sharelift.airflow.connections import destination_address

    try:
        conn = Connection.get_connection_from_secrets(target.conn_id)
    except Exception:  # noqa: BLE001 - Airflow raises its own not-found types
        raise CliError(
            f"no Airflow connection named {target.conn_id!r} in this environment "
            "(AIRFLOW_HOME, AIRFLOW_CONN_* variables); give --destination-conn-id"
        ) from None
    return destination_address(conn, target.prefix)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clean(
    destination: Destination, checkpoint_dir: str, older_than: float, *, dry_run: bool
) -> list[str]:
    """Abort stale uploads and remove stale checkpoints; one line per thing removed."""
    from sharelift.storage.checkpoint import read_header

    cutoff = now() - older_than
    verb = "would remove" if dry_run else "removed"
    lines: list[str] = []
    checkpoints: list[tuple[str, float]] = []
    recent_uploads: set[str] = set()
    if os.path.isdir(checkpoint_dir):
        for name in sorted(os.listdir(checkpoint_dir)):
            path = os.path.join(checkpoint_dir, name)
            try:
                written = os.stat(path).st_mtime
            except OSError:
                continue
            if written >= cutoff:
                header = read_header(path)
                if header is not None:
                    recent_uploads.add(header.upload_id)
            else:
                checkpoints.append((path, written))
    for upload in destination.incomplete_uploads():
        started = upload.initiated_ns / 1e9 if upload.initiated_ns else None
        if started is None or started >= cutoff or upload.upload_id in recent_uploads:
            continue
        if not dry_run:
            destination.abort_upload(upload)
        lines.append(
            f"{verb} incomplete upload {destination.display_url(upload.key)} "
            f"(upload {upload.upload_id}, started {_when(started)})"
        )
    for path, written in checkpoints:
        if not dry_run:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
        lines.append(f"{verb} checkpoint {path} (last written {_when(written)})")
    return lines


def run(args: argparse.Namespace) -> int:
    from sharelift.engine.run_paths import RunPaths
    from sharelift.errors import ShareliftError
    from sharelift.storage import open_destination

    config = resolve(args.state_url)
    try:
        store = open_store(config)
        try:
            require_job(store, args.job, config)
            runs = store.list_runs(args.job)
        finally:
            store.close()
        target = target_of(runs, args.destination_conn_id, args.prefix)
        address = address_of(target)
    except CliError as exc:
        return fail(exc)
    except Exception as exc:  # noqa: BLE001 - a bad connection: its own clear message
        from sharelift.errors import scrub

        return fail(CliError(scrub(str(exc))))
    checkpoint_dir = RunPaths(config.work_dir, args.job, "").checkpoints
    try:
        with open_destination(address) as destination:
            lines = clean(destination, checkpoint_dir, args.older_than, dry_run=args.dry_run)
    except ShareliftError as exc:  # the bucket refused or is unreachable: nothing more done
        return fail(CliError(f"{address.name}: {exc}"))
    for line in lines:
        print(line)
    what = "to remove (dry run: nothing removed)" if args.dry_run else "removed"
    print(f"job {args.job}: {len(lines)} leftover(s) older than {args.older_than.text} {what}")
    return 0
