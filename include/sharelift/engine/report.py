"""Report: the three lists and a summary, in the bucket under ``aliyun_mgw_import_report/``.

Layout (docs/reports.md): ``aliyun_mgw_import_report/<job>/<run>/`` holds
``<job>_total_list.txt``, ``<job>_completed_list.txt``, ``<job>_error_list.txt`` and
``<job>_summary.json`` (+ a readable ``<job>_summary.txt``). The folder is at the bucket
root whatever the destination prefix, as the reference service does.

Line formats (tab-separated, one file per line, UTF-8):

* total list: ``<source url>\t<size bytes>\t<last-modified, ISO 8601 UTC>``
* completed list: ``<object name>\t<size bytes>\t<CRC-64>\t<completion time>``
* error list: ``<object name>\t<start time>\t<end time>\t<error description>``

A tab, newline, carriage return or '%' inside a name is written as ``%09``, ``%0A``,
``%0D``, ``%25`` so that every line splits into the same fields.

Lists are built on local disk from the state database page by page, then uploaded, so a
run of millions of files never holds a list in memory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sharelift.engine.manifest import iter_rows
from sharelift.engine.state import StateStore
from sharelift.storage.base import Destination, Source

REPORT_ROOT = "aliyun_mgw_import_report"
_ESCAPES = str.maketrans({"%": "%25", "\t": "%09", "\n": "%0A", "\r": "%0D"})


def escape_field(text: str) -> str:
    return text.translate(_ESCAPES)


def unescape_field(text: str) -> str:
    """The inverse of ``escape_field`` (for tools that read the lists back)."""
    from urllib.parse import unquote

    return unquote(text) if "%" in text else text


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_ns(ns: int | None) -> str:
    if ns is None:
        return ""
    secs, rem = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rem:09d}Z"


def completed_line(o: dict[str, Any]) -> str:
    return f"{escape_field(o['object_key'])}\t{o['size']}\t{o['crc64']}\t{iso(o['finished_at'])}\n"


def error_line(o: dict[str, Any]) -> str:
    return (
        f"{escape_field(o['object_key'])}\t{iso(o['started_at'])}\t{iso(o['finished_at'])}\t"
        f"{escape_field(o['reason'] or '')}\n"
    )


# list kind -> (outcome status it lists, its line format)
OUTCOME_LISTS = {"completed": ("copied", completed_line), "error": ("failed", error_line)}


def outcome_lines(state: StateStore, job: str, run_id: str, kind: str) -> Iterator[str]:
    """The lines of the completed or the error list, from the state database (the report
    writes them; the UI streams them while a run is still going)."""
    status, line = OUTCOME_LISTS[kind]
    for o in state.iter_outcomes(job, run_id, status=status):
        yield line(o)


def report_folder(job: str, run_id: str) -> str:
    safe_run = run_id.replace("/", "_").replace(":", "-").replace("+", "_")
    return f"{REPORT_ROOT}/{job}/{safe_run}/"


def list_names(job: str) -> dict[str, str]:
    return {
        "total": f"{job}_total_list.txt",
        "completed": f"{job}_completed_list.txt",
        "error": f"{job}_error_list.txt",
        "summary": f"{job}_summary.json",
        "summary_text": f"{job}_summary.txt",
    }


def write_report(
    job: str,
    run_id: str,
    manifest_path: str,
    source: Source,
    destination: Destination,
    state: StateStore,
    *,
    scan_summary: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the lists and summary; returns the summary (also stored in the state DB)."""
    record_unattempted(job, run_id, manifest_path, destination, state)
    names = list_names(job)
    folder = report_folder(job, run_id)
    root = _root_destination(destination)
    with tempfile.TemporaryDirectory(prefix="sharelift-report-") as tmp:
        paths = {k: os.path.join(tmp, v) for k, v in names.items()}
        with open(paths["total"], "w", encoding="utf-8") as f:
            for row in iter_rows(manifest_path):
                f.write(
                    f"{escape_field(source.display_url(row.path))}\t{row.size}\t{iso_ns(row.mtime_ns)}\n"
                )
        for kind in ("completed", "error"):
            with open(paths[kind], "w", encoding="utf-8") as f:
                f.writelines(outcome_lines(state, job, run_id, kind))
        summary = build_summary(job, run_id, state, scan_summary=scan_summary, extra=extra)
        summary["report_folder"] = root.display_url(folder)
        summary["lists"] = {
            k: folder + v for k, v in names.items() if k in ("total", "completed", "error")
        }
        with open(paths["summary"], "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2, sort_keys=True)
        with open(paths["summary_text"], "w", encoding="utf-8") as f:
            f.write(format_summary(summary))
        for kind, local in paths.items():
            with open(local, "rb") as f:
                root.put(folder + names[kind], f, os.path.getsize(local))
    root.close()
    state.upsert_run(job, run_id, report_url=summary["report_folder"])
    return summary


def record_unattempted(
    job: str, run_id: str, manifest_path: str, destination: Destination, state: StateStore
) -> int:
    """Every manifest row without an outcome (its subtask crashed) becomes a failed file.

    Nothing is silently lost: the error list names each of them and a retry takes them.
    """
    from sharelift.engine.copier import object_name
    from sharelift.engine.state import OutcomeRow

    missing = 0
    batch: list = []

    def flush() -> None:
        nonlocal missing
        paths = [r.path for r in batch]
        absent = set(state.missing(job, run_id, paths))
        now = time.time()
        rows = [
            OutcomeRow(
                r.path,
                object_name(destination, r.path),
                -1,
                "failed",
                r.size,
                r.mtime_ns,
                None,
                "not copied: its subtask did not finish (see the copy task's log)",
                now,
                now,
            )
            for r in batch
            if r.path in absent
        ]
        state.record(job, run_id, rows)
        missing += len(rows)
        batch.clear()

    for row in iter_rows(manifest_path):
        batch.append(row)
        if len(batch) >= 5000:
            flush()
    if batch:
        flush()
    return missing


def _root_destination(destination: Destination) -> Destination:
    """The same destination without its prefix: reports go to the bucket root."""
    from sharelift.storage import open_destination

    address = getattr(destination, "address", None)
    if address is None or not address.prefix:
        return destination
    return open_destination(dataclasses.replace(address, prefix=""))


def build_summary(
    job: str,
    run_id: str,
    state: StateStore,
    *,
    scan_summary: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    counts = state.counts(job, run_id)
    run = state.get_run(job, run_id) or {}
    started = run.get("started_at") or time.time()
    duration = max(time.time() - started, 1e-9)
    copied_files, copied_bytes = counts.get("copied", (0, 0))
    summary: dict[str, Any] = {
        "job": job,
        "run_id": run_id,
        "files_total": sum(n for n, _ in counts.values()),
        "bytes_total": sum(b for _, b in counts.values()),
        "files_copied": copied_files,
        "bytes_copied": copied_bytes,
        "files_skipped": counts.get("skipped", (0, 0))[0],
        "files_failed": counts.get("failed", (0, 0))[0],
        "skipped_reasons": state.skip_reasons(job, run_id),
        "started_at": iso(started),
        "duration_seconds": round(duration, 3),
        "throughput_mb_per_s": round(copied_bytes / duration / 1e6, 3),
        "files_per_second": round(copied_files / duration, 1),
    }
    if scan_summary:
        summary["scan"] = scan_summary
    if extra:
        summary.update(extra)
    done = "Success" if run.get("migration_type") == "sync" else "Completed"
    summary["state"] = "Failed" if summary["files_failed"] else done
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"sharelift job {summary['job']}, run {summary['run_id']}: {summary['state']}",
        f"  files: {summary['files_total']} considered, {summary['files_copied']} copied, "
        f"{summary['files_skipped']} skipped, {summary['files_failed']} failed",
        f"  bytes copied: {summary['bytes_copied']} in {summary['duration_seconds']} s "
        f"({summary['throughput_mb_per_s']} MB/s, {summary['files_per_second']} files/s)",
    ]
    for reason, n in sorted(summary.get("skipped_reasons", {}).items()):
        lines.append(f"  skipped {n}: {reason}")
    scan = summary.get("scan") or {}
    for reason, n in sorted((scan.get("left_out") or {}).items()):
        lines.append(f"  left out {n}: {reason}")
    if summary.get("report_folder"):
        lines.append(f"  report: {summary['report_folder']}")
    return "\n".join(lines) + "\n"
