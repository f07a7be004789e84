"""Verify: every copied object's size and CRC-64 against what was read from the source.

The put already compared the server's CRC in its response; this is the independent
check after the fact (an object replaced or truncated between copy and verify, a server
that acknowledged bytes it did not keep). A mismatch turns the file into a failed file.
HEAD requests are I/O-bound, so a thread pool runs them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sharelift.engine.state import StateStore
from sharelift.errors import SharelIftError
from sharelift.storage.base import Destination

BATCH = 2000


def _check(destination: Destination, row: dict[str, Any], prefix: str) -> dict[str, Any]:
    key = (
        row["object_key"][len(prefix) :]
        if prefix and row["object_key"].startswith(prefix)
        else row["object_key"]
    )
    try:
        info = destination.head(key)
    except SharelIftError as exc:
        return {"path": row["path"], "status": "failed", "reason": f"verification failed: {exc}"}
    expected_crc = int(row["crc64"]) if row["crc64"] is not None else None
    if info is None:
        why = "object missing at the destination"
    elif info.size != row["size"]:
        why = f"size differs: source {row['size']} bytes, destination {info.size}"
    elif info.crc64 is not None and expected_crc is not None and info.crc64 != expected_crc:
        why = f"CRC-64 differs: source {expected_crc}, destination {info.crc64}"
    else:
        return {"path": row["path"], "verified": True}
    return {"path": row["path"], "status": "failed", "reason": f"verification failed: {why}"}


def verify(
    job: str, run_id: str, destination: Destination, state: StateStore, workers: int = 16
) -> tuple[int, int]:
    """Returns (verified, mismatched)."""
    prefix = getattr(getattr(destination, "address", None), "prefix", "") or ""
    ok = bad = 0
    batch: list[dict[str, Any]] = []
    with ThreadPoolExecutor(workers, thread_name_prefix="sharelift-verify") as pool:

        def flush() -> None:
            nonlocal ok, bad
            results = list(pool.map(lambda r: _check(destination, r, prefix), batch))
            state.mark(job, run_id, results)
            ok += sum(1 for r in results if r.get("verified"))
            bad += sum(1 for r in results if r.get("status") == "failed")
            batch.clear()

        for row in state.iter_outcomes(job, run_id, status="copied"):
            if row["verified"]:
                ok += 1
                continue
            batch.append(row)
            if len(batch) >= BATCH:
                flush()
        if batch:
            flush()
    return ok, bad
