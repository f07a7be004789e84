"""What one measurement does, run in a fresh child process (``run.py --child``).

The parent writes ``{"kind": ..., "params": {...}}`` as JSON to the child's stdin (secrets
travel there, never on a command line) and reads one JSON line starting with ``RESULT``
from its stdout. A fresh interpreter per case keeps the peak RSS honest: nothing the parent
imported or allocated is counted, and one case cannot warm up another's caches of Python
objects.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

RESULT = "RESULT "


# -- addresses as plain dicts (stdin only) -------------------------------------------------


def source_address(d: dict[str, Any]) -> Any:
    from sharelift.addresses import SourceAddress

    return SourceAddress(**d)


def destination_address(d: dict[str, Any]) -> Any:
    from sharelift.addresses import DestinationAddress

    return DestinationAddress(**d)


def _cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU of this process and its waited-for children (the worker
    processes, once their pool is shut down)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime


def _cpu_since(start: tuple[float, float]) -> dict[str, float]:
    user, system = _cpu_seconds()
    return {
        "cpu_seconds": user - start[0] + system - start[1],
        "cpu_sys_seconds": system - start[1],
    }


def _maxrss_mb() -> dict[str, float]:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"maxrss_self_mb": self_kb / 1024, "maxrss_children_mb": kids_kb / 1024}


# -- the copy engine alone -------------------------------------------------------------------


def engine(p: dict[str, Any]) -> dict[str, Any]:
    """``run_job`` as the demo runs it: the DAG's step functions in a loop, phases timed by
    wrapping those functions."""
    from sharelift.engine import runner, steps
    from sharelift.engine.jobs import JobSpec

    marks: dict[str, list[float]] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                marks[name] = [t, time.perf_counter()]

        return wrapper

    for name in ("scan", "partition", "verify", "report"):
        setattr(steps, name, timed(name, getattr(steps, name)))
    job = JobSpec(
        name=p["job"],
        source="bench-src",
        destination="bench-dst",
        subtask_files=p["subtask_files"],
        subtask_bytes=p["subtask_bytes"],
    )
    src = source_address(p["source"])
    dst = destination_address(p["destination"])
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    summary = runner.run_job(job, src, dst, work_dir=p["work_dir"], workers=p["workers"])
    t1, cpu = time.perf_counter(), _cpu_since(cpu0)
    phases = {}
    if all(k in marks for k in ("scan", "partition", "verify", "report")):
        phases = {
            "setup+scan": marks["scan"][1] - t0,
            "partition": marks["partition"][1] - marks["partition"][0],
            "copy": marks["verify"][0] - marks["partition"][1],
            "verify": marks["verify"][1] - marks["verify"][0],
            "report": t1 - marks["verify"][1],
        }
    return {
        "files": summary["files_copied"],
        "bytes": summary["bytes_copied"],
        "failed": summary["files_failed"],
        "subtasks": summary.get("subtasks"),
        "seconds": t1 - t0,
        **cpu,
        "phases": phases,
        **_maxrss_mb(),
    }


# -- scanning ----------------------------------------------------------------------------


def scan(p: dict[str, Any]) -> dict[str, Any]:
    from sharelift.engine.jobs import JobSpec
    from sharelift.engine.manifest import Manifest
    from sharelift.engine.scan import scan as do_scan
    from sharelift.engine.state import StateStore
    from sharelift.storage import open_source

    job = JobSpec(name="bench-scan", source="bench-src", destination="bench-dst")
    state = StateStore(f"sqlite:///{p['manifest']}")
    with open_source(source_address(p["source"])) as source:
        source.check()
        t = time.perf_counter()
        result = do_scan(source, job, Manifest(state, job.name, "bench"))
        seconds = time.perf_counter() - t
    state.close()
    os.unlink(p["manifest"])
    return {
        "files": result.files_seen,
        "bytes": result.bytes_seen,
        "seconds": seconds,
        **_maxrss_mb(),
    }


# -- raw reads with the backend's own source class ----------------------------------------


def _read_paths(address: dict[str, Any], paths: list[str]) -> tuple[int, int]:
    from sharelift.storage import open_source

    files = size = 0
    with open_source(source_address(address)) as source:
        chunk = source.features.read_chunk_size
        for path in paths:
            with source.open(path) as f:
                while data := f.read(chunk):
                    size += len(data)
            files += 1
    return files, size


def read(p: dict[str, Any]) -> dict[str, Any]:
    with open(p["list"]) as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
    n = p["processes"]
    t, cpu0 = time.perf_counter(), _cpu_seconds()
    if n == 1:
        files, size = _read_paths(p["source"], paths)
    else:
        with ProcessPoolExecutor(n) as pool:
            parts = list(pool.map(_read_paths, [p["source"]] * n, [paths[i::n] for i in range(n)]))
        files = sum(x[0] for x in parts)
        size = sum(x[1] for x in parts)
    return {
        "files": files,
        "bytes": size,
        "seconds": time.perf_counter() - t,
        **_cpu_since(cpu0),
        **_maxrss_mb(),
    }


# -- the plain oss2 uploader (what a user writes first) ------------------------------------


def oss2_upload(p: dict[str, Any]) -> dict[str, Any]:
    import logging

    import oss2

    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    bucket = oss2.Bucket(
        oss2.AuthV4(p["access_key_id"], p["access_key_secret"]),
        p["endpoint"],
        p["bucket"],
        region=p["region"],
    )
    root = p["root"]
    with open(p["list"]) as f:
        rels = [line.rstrip("\n") for line in f if line.strip()]

    def one(rel: str) -> int:
        path = os.path.join(root, rel)
        bucket.put_object_from_file(rel, path)
        return os.path.getsize(path)

    t = time.perf_counter()
    with ThreadPoolExecutor(p["concurrency"]) as pool:
        sizes = list(pool.map(one, rels))
    return {
        "files": len(sizes),
        "bytes": sum(sizes),
        "seconds": time.perf_counter() - t,
        **_maxrss_mb(),
    }


# -- CRC-64 cost -----------------------------------------------------------------------------


@contextlib.contextmanager
def _free_crc() -> Iterator[None]:
    """CRC-64 that costs nothing (and proves nothing): every place the copy path sums bytes
    answers 0 at once, so a copy with it shows what the sums cost the copy."""
    from sharelift import checksum
    from sharelift.storage import read_ahead, streaming

    def nothing(data: Any, initial: int = 0) -> int:
        return 0

    saved = [(m, m.crc64) for m in (checksum, read_ahead, streaming) if hasattr(m, "crc64")]
    try:
        for module, _ in saved:
            module.crc64 = nothing  # type: ignore[attr-defined]
        yield
    finally:
        for module, real in saved:
            module.crc64 = real  # type: ignore[attr-defined]


def crc(p: dict[str, Any]) -> dict[str, Any]:
    """CRC-64 over the big set in memory, and the big set copied as the engine copies each
    file, with the CRC and with a CRC that costs nothing: the share of the copy's time the
    CRC takes.

    The copy is ``sharelift.transfer.copy_file`` from the local source into a local
    destination in memory (tmpfs where there is one, see ``run.py``), through the read-ahead
    or sum-aside thread, ``ExactReader`` and the put, one file at a time; each file is removed after its put. Inside ``batch()`` as the engine
    copies: no fsync per file (the batch's one ``syncfs`` is left out of the time).
    """
    from sharelift.addresses import DestinationAddress
    from sharelift.checksum import crc64
    from sharelift.storage import open_source
    from sharelift.storage.base import Entry, EntryKind
    from sharelift.storage.local_destination import LocalDestination
    from sharelift.transfer import Status, copy_file

    root = p["root"]
    with open(p["list"]) as listing:
        rels = [line.rstrip("\n") for line in listing if line.strip()]
    total = 0
    crc_seconds = 0.0
    for rel in rels:
        with open(os.path.join(root, rel), "rb") as f:
            data = f.read()
        total += len(data)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            crc64(data)
            best = min(best, time.perf_counter() - t)
        crc_seconds += best
        del data

    src = source_address(p["source"])
    sink = DestinationAddress(name="bench-crc-sink", kind="local", path=p["sink"])
    os.makedirs(p["sink"], exist_ok=True)

    def copy_all() -> float:
        seconds = 0.0
        with (
            open_source(src) as source,
            LocalDestination(sink) as destination,
            destination.batch(),
        ):
            for rel in rels:
                st = os.stat(os.path.join(root, rel))
                entry = Entry(rel, EntryKind.FILE, size=st.st_size, mtime_ns=st.st_mtime_ns)
                t = time.perf_counter()
                out = copy_file(source, destination, entry, rel, known_absent=True)
                seconds += time.perf_counter() - t
                if out.status != Status.COPIED:
                    raise RuntimeError(f"{rel}: {out.status} {out.reason}")
                destination.delete(rel)
        return seconds

    with_crc: list[float] = []
    without: list[float] = []
    for i in range(p.get("repeats", 7)):
        order = (True, False) if i % 2 == 0 else (False, True)
        for real in order:
            if real:
                with_crc.append(copy_all())
            else:
                with _free_crc():
                    without.append(copy_all())
    return {
        "files": len(rels),
        "bytes": total,
        "crc_seconds": crc_seconds,
        "crc_gb_s": total / crc_seconds / 1e9,
        "copy_with_crc_s": min(with_crc),
        "copy_without_crc_s": min(without),
        "seconds": min(with_crc),
        **_maxrss_mb(),
    }


# -- a very large job's plan: scan, partition and the state database's bookkeeping ---------


def _plan_phase(name: str, p: dict[str, Any]) -> dict[str, float]:
    """One phase of ``plan`` in this process (a fresh one per phase, as a task is)."""
    from sharelift.addresses import DestinationAddress, SourceAddress
    from sharelift.engine import steps
    from sharelift.engine.jobs import JobSpec

    job = JobSpec(
        name="bench-plan",
        source="bench-synthetic",
        destination="bench-null",
        subtask_files=p["subtask_files"],
        subtask_bytes=1024**4,
        dry_run=True,
    )
    src = SourceAddress(name="bench-synthetic", protocol="synthetic", share=str(p["files"]))
    # A dry run writes nothing, so a folder that does not exist is never touched: the
    # bookkeeping is measured without a destination's cost.
    dst = DestinationAddress(name="bench-null", kind="local", path=p["null_dir"])
    t = time.perf_counter()
    extra: dict[str, float] = {}
    with steps.open_run(
        job, "bench", src, dst, work_dir=p["work_dir"], state_url=p["state_url"]
    ) as run:
        if name == "scan":
            extra["files"] = steps.scan(run).files_seen
        elif name == "partition":
            subtasks = steps.partition(run)
            groups = steps.group(subtasks, p["max_groups"])
            extra["subtasks"], extra["groups"] = len(subtasks), len(groups)
        else:
            # What a copy task does with the state database for its group, short of the
            # files: its subtasks looked up, each one's manifest rows read, each marked done.
            from sharelift.engine.partition import Subtask, group

            manifest = run.manifest
            plain = [
                Subtask(s.index, s.start_row, s.stop_row, s.files, s.bytes)
                for s in manifest.subtasks()
            ]
            rows = 0
            for g in group(plain, p["max_groups"]):
                for stored in manifest.subtasks(g.first, g.stop):
                    rows += sum(1 for _ in manifest.rows(stored.start_row, stored.stop_row))
                    manifest.mark_done(stored.index)
            extra["outcomes"] = rows
    extra["seconds"] = time.perf_counter() - t
    extra["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return extra


def plan(p: dict[str, Any]) -> dict[str, Any]:
    """A synthetic listing of ``files`` entries (no files anywhere): scan into the state
    database, partition into subtasks and groups, then every group's subtasks worked
    through as copy tasks do with the state database (subtasks looked up, their manifest
    rows read, each marked done; no file copied, no per-file outcome). Each phase runs in
    a process of its own."""
    import multiprocessing

    phases: dict[str, dict[str, float]] = {}
    context = multiprocessing.get_context("spawn")
    for name in ("scan", "partition", "bookkeeping"):
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            phases[name] = pool.submit(_plan_phase, name, p).result()
    seconds = sum(ph["seconds"] for ph in phases.values())
    millions = p["files"] / 1e6
    return {
        "files": p["files"],
        "bytes": 0,
        "seconds": seconds,
        "phases": {k: v["seconds"] for k, v in phases.items()},
        "phase_rss_mb": {k: v["maxrss_mb"] for k, v in phases.items()},
        "seconds_per_million": {k: v["seconds"] / millions for k, v in phases.items()},
        "subtasks": phases["partition"]["subtasks"],
        "groups": phases["partition"]["groups"],
        "outcomes": phases["bookkeeping"]["outcomes"],
        **_maxrss_mb(),
    }


CASES = {
    "engine": engine,
    "scan": scan,
    "read": read,
    "oss2": oss2_upload,
    "crc": crc,
    "plan": plan,
}


def child_main() -> int:
    request = json.loads(sys.stdin.read())
    result = CASES[request["kind"]](request["params"])
    sys.stdout.write(RESULT + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0
