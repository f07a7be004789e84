"""Report: the three lists and a summary, in the bucket under ``aliyun_mgw_import_report/``.

Layout (docs/reports.md): ``aliyun_mgw_import_report/<job>/<run>/`` holds
``<job>_total_list.txt``, ``<job>_completed_list.txt``, ``<job>_error_list.txt`` and
``<job>_summary.json`` (+ a readable ``<job>_summary.txt``). The folder is at the bucket
root whatever the destination prefix, as the reference service does.

Line formats (tab-separated, one entry per line, UTF-8):

* total list: ``<source url>\t<size bytes>\t<last-modified, ISO 8601 UTC>``: every entry
  the scan recorded (files to copy, symlinks and special files skipped, entries and
  folders that could not be read), with the size and mtime the listing gave;
* completed list: ``<object name>\t<size bytes>\t<CRC-64>\t<completion time>``
* error list: ``<object name>\t<start time>\t<end time>\t<error description>``
* unverified list (``<job>_unverified_list.txt``): ``<object name>\t<reason>``: copied
  files (also in the completed list) whose objects verify could not check; counted as
  ``files_unverified`` in the summary

Names (and error descriptions) are escaped by one rule, ``sharelift.engine.names``: '%',
bytes that are not valid UTF-8, control characters and U+2028/U+2029 are written as
``%XX`` per byte, so every line splits into the same fields whatever the names, and
``urllib.parse.unquote_to_bytes`` gives back a name's exact bytes. The summary names the
rule (``name_escaping``).

The summary adds up: ``files_seen`` (every entry the scan met, folders apart) equals
``files_copied + files_skipped + files_failed + files_left_out`` (``accounting``). A
source that cannot see some kinds of entries at all (Samba hides symlinks, special files
and names that are not UTF-8 from SMB2 clients) says so in ``hidden_kinds``.

Lists are built on local disk from the state database page by page, then uploaded, so a
run of millions of files never holds a list in memory.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sharelift.engine.manifest import Manifest
from sharelift.engine.names import NOT_UTF8_REASON, escape_field, unescape_field
from sharelift.engine.run_paths import safe_run_id
from sharelift.engine.state import StateStore
from sharelift.storage import retrying
from sharelift.storage.base import Destination, Source

REPORT_ROOT = "aliyun_mgw_import_report"
UNFINISHED = (
    "not copied: its subtask did not finish (its worker was killed or its copy task failed; "
    "see the copy task's log)"
)


def unfinished(subtask: int) -> str:
    """The reason of a file whose subtask ``subtask`` never recorded it."""
    return UNFINISHED.replace("its subtask", f"its subtask {subtask}", 1)


NAME_ESCAPING = (
    "percent: '%', bytes that are not valid UTF-8, control characters and U+2028/U+2029 "
    "are written as %XX per byte; urllib.parse.unquote_to_bytes gives the name's bytes"
)


def source_list_name(source: Source, path: str, reason: str = "") -> str:
    """The total list's first field: the source URL of ``path``, escaped by the rule.

    A path recorded under its escaped spelling (a name that is not UTF-8) is turned back
    into the walk's spelling first, so it is escaped once, like every other name.
    """
    if reason == NOT_UTF8_REASON:
        path = unescape_field(path)
    return escape_field(source.display_url(path))


def object_list_name(object_key: str, path: str, reason: str = "") -> str:
    """The completed and error lists' first field: the object name, escaped by the rule."""
    if reason == NOT_UTF8_REASON and object_key.endswith(path):
        # The key ends with the path already escaped: escape only the prefix before it.
        return escape_field(object_key[: len(object_key) - len(path)]) + path
    return escape_field(object_key)


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_ns(ns: int | None) -> str:
    if ns is None:
        return ""
    secs, rem = divmod(int(ns), 1_000_000_000)
    try:
        stamp = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (ValueError, OverflowError, OSError):
        # Beyond the years 1-9999 (a file server may hold any 64-bit time): say it in
        # seconds rather than lose the report.
        return f"@{secs}.{rem:09d}"
    return f"{stamp}.{rem:09d}Z"


def completed_line(o: dict[str, Any]) -> str:
    name = object_list_name(o["object_key"], o["path"], o["reason"] or "")
    return f"{name}\t{o['size']}\t{o['crc64']}\t{iso(o['finished_at'])}\n"


def error_line(o: dict[str, Any]) -> str:
    reason = o["reason"] or ""
    name = object_list_name(o["object_key"], o["path"], reason)
    return f"{name}\t{iso(o['started_at'])}\t{iso(o['finished_at'])}\t{escape_field(reason)}\n"


def unverified_line(o: dict[str, Any]) -> str:
    name = object_list_name(o["object_key"], o["path"], o["reason"] or "")
    return f"{name}\t{escape_field(o['unverified'])}\n"


# list kind -> (outcome status it lists, its line format)
OUTCOME_LISTS = {"completed": ("copied", completed_line), "error": ("failed", error_line)}


def outcome_lines(state: StateStore, job: str, run_id: str, kind: str) -> Iterator[str]:
    """The lines of the completed or the error list, from the state database (the report
    writes them; the UI streams them while a run is still going)."""
    status, line = OUTCOME_LISTS[kind]
    for o in state.iter_outcomes(job, run_id, status=status):
        yield line(o)


def report_folder(job: str, run_id: str) -> str:
    """The run's report folder, relative to the bucket root."""
    return f"{REPORT_ROOT}/{job}/{safe_run_id(run_id)}/"


def list_names(job: str) -> dict[str, str]:
    return {
        "total": f"{job}_total_list.txt",
        "completed": f"{job}_completed_list.txt",
        "error": f"{job}_error_list.txt",
        "unverified": f"{job}_unverified_list.txt",
        "summary": f"{job}_summary.json",
        "summary_text": f"{job}_summary.txt",
    }


def write_report(
    job: str,
    run_id: str,
    manifest: Manifest,
    source: Source,
    destination: Destination,
    state: StateStore,
    *,
    scan_summary: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the lists and summary; returns the summary (also stored in the state DB)."""
    record_unfinished_subtasks(job, run_id, manifest, destination, state)
    names = list_names(job)
    folder = report_folder(job, run_id)
    with (
        destination.at_root() as root,
        tempfile.TemporaryDirectory(prefix="sharelift-report-") as tmp,
    ):
        paths = {k: os.path.join(tmp, v) for k, v in names.items()}
        with open(paths["total"], "w", encoding="utf-8") as f:
            for row in manifest.rows():
                name = source_list_name(source, row.path, row.reason)
                f.write(f"{name}\t{row.size}\t{iso_ns(row.mtime_ns)}\n")
        for kind in ("completed", "error"):
            with open(paths[kind], "w", encoding="utf-8") as f:
                f.writelines(outcome_lines(state, job, run_id, kind))
        with open(paths["unverified"], "w", encoding="utf-8") as f:
            f.writelines(
                unverified_line(o)
                for o in state.iter_outcomes(job, run_id, status="copied")
                if o["unverified"]
            )
        summary = build_summary(job, run_id, state, scan_summary=scan_summary, extra=extra)
        summary["hidden_kinds"] = list(source.features.hidden_kinds)
        summary["report_folder"] = root.display_url(folder)
        summary["lists"] = {
            k: folder + v
            for k, v in names.items()
            if k in ("total", "completed", "error", "unverified")
        }
        with open(paths["summary"], "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2, sort_keys=True)
        with open(paths["summary_text"], "w", encoding="utf-8") as f:
            f.write(format_summary(summary))
        # Each object is a "file" of the job's retry policy, as in the copy: a bucket that
        # refuses the report fails the run after the job's retry time, not the default's.
        policy = retrying.policy_of(destination)
        for kind, local in paths.items():
            with open(local, "rb") as f, retrying.file_scope(policy):
                root.put(folder + names[kind], f, os.path.getsize(local))
    state.upsert_run(job, run_id, report_url=summary["report_folder"])
    return summary


def record_unfinished_subtasks(
    job: str, run_id: str, manifest: Manifest, destination: Destination, state: StateStore
) -> int:
    """Each file of a subtask that never finished (its worker was killed) fails with a
    reason naming the subtask; subtasks marked done have an outcome for every file and
    are not read again. A manifest without subtasks is checked whole."""
    stored = manifest.subtasks()
    if not stored:
        return record_unattempted(job, run_id, manifest, destination, state)
    missing = 0
    for st in stored:
        if not st.done:
            missing += record_unattempted(
                job,
                run_id,
                manifest,
                destination,
                state,
                rows=(st.start_row, st.stop_row),
                subtask=st.index,
                reason=unfinished(st.index),
            )
    # Rows past the last subtask (none when partition covered the manifest).
    return missing + record_unattempted(
        job, run_id, manifest, destination, state, rows=(stored[-1].stop_row, None)
    )


def record_unattempted(
    job: str,
    run_id: str,
    manifest: Manifest,
    destination: Destination,
    state: StateStore,
    *,
    rows: tuple[int, int | None] = (0, None),
    subtask: int = -1,
    reason: str = UNFINISHED,
) -> int:
    """Every manifest row (of ``rows``: start, stop) without an outcome becomes a failed file.

    Nothing is silently lost: the error list names each of them and a retry takes them.
    The copy step records its own rows this way, with its cause, when it raises; the
    report records what is still missing (a subtask whose worker was killed).
    """
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
                destination.object_name(r.path),
                subtask,
                "failed",
                r.size,
                r.mtime_ns,
                None,
                reason,
                now,
                now,
            )
            for r in batch
            if r.path in absent
        ]
        state.record(job, run_id, rows)
        missing += len(rows)
        batch.clear()

    for row in manifest.rows(*rows):
        batch.append(row)
        if len(batch) >= 5000:
            flush()
    if batch:
        flush()
    return missing


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
        "files_unverified": state.unverified(job, run_id),
        "skipped_reasons": state.skip_reasons(job, run_id),
        "started_at": iso(started),
        "duration_seconds": round(duration, 3),
        "throughput_mb_per_s": round(copied_bytes / duration / 1e6, 3),
        "files_per_second": round(copied_files / duration, 1),
    }
    if scan_summary:
        summary["scan"] = scan_summary
        summary["accounting"] = accounting(summary, scan_summary)
    if extra:
        summary.update(extra)
    if summary.get("subtasks") is None:
        # A DAG run's partition step stores the count with the run.
        summary["subtasks"] = run.get("subtasks")
    summary["name_escaping"] = NAME_ESCAPING
    done = "Success" if run.get("migration_type") == "sync" else "Completed"
    summary["state"] = "Failed" if summary["files_failed"] else done
    return summary


def accounting(summary: dict[str, Any], scan_summary: dict[str, Any]) -> dict[str, Any]:
    """Every entry the scan met is in exactly one count: the check the summary carries.

    ``files_seen`` (the scan's count of entries, folders apart) must equal the files
    copied, skipped and failed (one recorded outcome per manifest row) plus those left out
    by the run's choices (filters, the time window), which have no row.
    """
    left_out = sum(int(n) for n in (scan_summary.get("left_out") or {}).values())
    seen = int(scan_summary.get("files_seen") or 0)
    recorded = summary["files_copied"] + summary["files_skipped"] + summary["files_failed"]
    return {
        "files_seen": seen,
        "files_left_out": left_out,
        "rule": "files_seen = files_copied + files_skipped + files_failed + files_left_out",
        "adds_up": seen == recorded + left_out and recorded == summary["files_total"],
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"sharelift job {summary['job']}, run {summary['run_id']}: {summary['state']}",
        f"  files: {summary['files_total']} considered, {summary['files_copied']} copied, "
        f"{summary['files_skipped']} skipped, {summary['files_failed']} failed",
        f"  bytes copied: {summary['bytes_copied']} in {summary['duration_seconds']} s "
        f"({summary['throughput_mb_per_s']} MB/s, {summary['files_per_second']} files/s)",
    ]
    if summary.get("files_unverified"):
        lines.append(
            f"  {summary['files_unverified']} copied file(s) could not be verified (the "
            "bucket did not answer): listed with the reason in the unverified list"
        )
    for reason, n in sorted(summary.get("skipped_reasons", {}).items()):
        lines.append(f"  skipped {n}: {reason}")
    scan = summary.get("scan") or {}
    for reason, n in sorted((scan.get("left_out") or {}).items()):
        lines.append(f"  left out {n}: {reason}")
    check = summary.get("accounting")
    if check:
        verdict = "adds up" if check["adds_up"] else "DOES NOT ADD UP"
        lines.append(f"  {check['files_seen']} entries seen: {check['rule']} ({verdict})")
    if summary.get("hidden_kinds"):
        kinds = ", ".join(summary["hidden_kinds"])
        lines.append(f"  not visible through this source (the server hides them): {kinds}")
    if summary.get("name_escaping"):
        lines.append(f"  names in the lists: {summary['name_escaping']}")
    if summary.get("report_folder"):
        lines.append(f"  report: {summary['report_folder']}")
    return "\n".join(lines) + "\n"
