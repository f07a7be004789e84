"""Verify: every copied object's size and CRC-64 against what was read from the source.

The put already compared the server's CRC with ours in its response; this is the
independent check after the fact (an object replaced or truncated between copy and verify,
a server that acknowledged bytes it did not keep). A *measured* mismatch (object missing,
size or CRC-64 different) turns the file into a failed file. An object that could not be
checked (the bucket kept answering 503, connections kept breaking, past the shared retry
policy of ``sharelift.storage.retrying`` that every request already goes through) is not
evidence of anything: the file stays copied, marked ``unverified`` with the reason, and the
report counts and lists it. A later verify of the same run checks it again.

A listing answers for a thousand objects at once: an object still listed with the size
and ETag its put returned is the very object whose CRC the server confirmed, so only the
others (ETag or size changed, missing, or a destination without listings) get a HEAD and
a CRC comparison: on many small files a HEAD each was a large share of the whole run
(``bench/results/findings.md``). HEAD requests are I/O-bound, so a thread pool runs them.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sharelift.engine.state import StateStore
from sharelift.errors import scrub
from sharelift.storage import retrying
from sharelift.storage.base import Destination, ObjectInfo
from sharelift.storage.retrying import describe

log = logging.getLogger(__name__)
BATCH = 2000


@dataclass(frozen=True, slots=True)
class VerifyResult:
    verified: int = 0
    mismatched: int = 0
    unverified: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "verified": self.verified,
            "mismatched": self.mismatched,
            "unverified": self.unverified,
        }


def _unchecked(row: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    reason = scrub(describe(exc)) or type(exc).__name__
    return {"path": row["path"], "unverified": f"could not be verified: {reason}"}


def _check(destination: Destination, row: dict[str, Any]) -> dict[str, Any]:
    try:
        with retrying.file_scope(retrying.policy_of(destination)):
            info = destination.head(row["path"])
    except Exception as exc:  # noqa: BLE001 - no answer is no mismatch: the file stays copied
        return _unchecked(row, exc)
    expected_crc = int(row["crc64"]) if row["crc64"] is not None else None
    if info is None:
        why = "object missing at the destination"
    elif info.size != row["size"]:
        why = f"size differs: source {row['size']} bytes, destination {info.size}"
    elif info.crc64 is not None and expected_crc is not None and info.crc64 != expected_crc:
        why = f"CRC-64 differs: source {expected_crc}, destination {info.crc64}"
    else:
        return {"path": row["path"], "verified": True, "unverified": None}
    return {"path": row["path"], "status": "failed", "reason": f"verification failed: {why}"}


def _unchanged(row: dict[str, Any], listed: ObjectInfo | None) -> bool:
    """The listed object is the one this run's put stored (same ETag and size)."""
    return (
        listed is not None
        and row.get("etag") is not None
        and listed.etag == row["etag"]
        and listed.size == row["size"]
    )


def _listed(destination: Destination, keys: list[str]) -> dict[str, ObjectInfo]:
    """The listing of ``keys``; empty when it cannot be had (each object is then headed)."""
    if not keys:
        return {}
    try:
        with retrying.file_scope(retrying.policy_of(destination)):
            return destination.listed(keys) or {}
    except Exception as exc:  # noqa: BLE001 - a listing is a shortcut, not the check
        log.warning("listing for verify failed (%s); checking each object", describe(exc))
        return {}


def verify(
    job: str, run_id: str, destination: Destination, state: StateStore, workers: int = 16
) -> VerifyResult:
    """Check every copied, not yet verified outcome of the run.

    An outcome's ``path`` is also its object's key under the destination's root (the
    ``object_key`` column holds the full name the reports show).
    """
    ok = bad = unchecked = 0
    batch: list[dict[str, Any]] = []
    with ThreadPoolExecutor(workers, thread_name_prefix="sharelift-verify") as pool:

        def flush() -> None:
            nonlocal ok, bad, unchecked
            keys = [row["path"] for row in batch]
            tagged = [key for key, row in zip(keys, batch, strict=True) if row.get("etag")]
            listed = _listed(destination, tagged)
            results: list[dict[str, Any]] = []
            to_head: list[dict[str, Any]] = []
            for key, row in zip(keys, batch, strict=True):
                if _unchanged(row, listed.get(key)):
                    results.append({"path": row["path"], "verified": True, "unverified": None})
                else:
                    to_head.append(row)
            results.extend(pool.map(lambda r: _check(destination, r), to_head))
            state.mark(job, run_id, results)
            ok += sum(1 for r in results if r.get("verified"))
            bad += sum(1 for r in results if r.get("status") == "failed")
            unchecked += sum(1 for r in results if r.get("unverified"))
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
    return VerifyResult(ok, bad, unchecked)
