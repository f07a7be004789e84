"""Retry: a new run whose manifest is exactly the error list of an earlier run.

Each failed path is looked up at the source again (fresh size and mtime: the operator may
have fixed the file), so the retry copies what is there now. Nothing that run completed is
considered, so nothing is copied twice; a path that is still missing or unreadable goes
to the retry's own error list with its reason.
"""

from __future__ import annotations

import time

from sharelift.engine.manifest import Manifest, ManifestRow
from sharelift.engine.names import NOT_UTF8_REASON
from sharelift.engine.scan import ScanResult
from sharelift.engine.state import StateStore
from sharelift.errors import FileError
from sharelift.storage.base import EntryKind, Source


def build_retry_manifest(
    source: Source, state: StateStore, job: str, failed_run_id: str, manifest: Manifest
) -> ScanResult:
    if state.get_run(job, failed_run_id) is None:
        from sharelift.errors import ConfigError

        raise ConfigError("retry_of", f"job {job} has no run {failed_run_id!r} to retry")
    result = ScanResult(manifest=manifest.describe())
    started = time.monotonic()
    writer = manifest.writer()
    try:
        for outcome in state.iter_outcomes(job, failed_run_id, status="failed"):
            path = outcome["path"]
            result.files_seen += 1
            if outcome["reason"] == NOT_UTF8_REASON:
                # Recorded under its escaped spelling, which names no file: still an error.
                size, mtime = int(outcome["size"] or 0), int(outcome["mtime_ns"] or 0)
                writer.add(ManifestRow(path, size, mtime, None, "error", NOT_UTF8_REASON))
                result.errors += 1
                continue
            try:
                entry = source.stat(path)
            except FileError as exc:
                writer.add(
                    ManifestRow(path, int(outcome["size"] or 0), 0, None, "error", exc.reason)
                )
                result.errors += 1
                continue
            if entry.kind is not EntryKind.FILE:
                writer.add(
                    ManifestRow(
                        path,
                        0,
                        entry.mtime_ns,
                        entry.mode,
                        "error",
                        f"is now a {entry.kind.value}, not a file",
                    )
                )
                result.errors += 1
                continue
            writer.add(ManifestRow(path, entry.size, entry.mtime_ns, entry.mode, "copy"))
            result.files_to_copy += 1
            result.bytes_to_copy += entry.size
            result.bytes_seen += entry.size
        writer.close()
    except BaseException:
        writer.abort()
        raise
    result.seconds = time.monotonic() - started
    return result
