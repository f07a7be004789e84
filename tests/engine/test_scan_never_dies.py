"""One entry never ends a scan: names that are not UTF-8, and times no 64-bit nanosecond
count can hold, become error rows with the listing's size and mtime; the run reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.engine.jobs import JobSpec
from sharelift.engine.manifest import Manifest
from sharelift.engine.names import NOT_UTF8_REASON
from sharelift.engine.report import REPORT_ROOT, iso_ns
from sharelift.engine.runner import run_job
from sharelift.engine.scan import scan
from sharelift.engine.state import StateStore
from sharelift.storage import open_source

LATIN1 = b"caf\xe9 100%.txt"
BEYOND_2262 = 15_032_385_535  # seconds: the latest time ext4 keeps (year 2446)


def tree(root: Path) -> None:
    (root / "a.txt").write_bytes(b"first")
    with open(os.fsencode(root) + b"/" + LATIN1, "wb") as f:
        f.write(b"latin-1 name")
    os.utime(os.fsencode(root) + b"/" + LATIN1, (1_000_000_000, 1_000_000_000))
    (root / "far.txt").write_bytes(b"far")
    os.utime(root / "far.txt", (BEYOND_2262, BEYOND_2262))
    (root / "z.txt").write_bytes(b"last")


def test_a_name_that_is_not_utf8_is_an_error_row_with_its_listed_size_and_mtime(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    tree(src)
    address = SourceAddress(name="src-local", protocol="local", path=str(src))
    manifest = Manifest(StateStore(f"sqlite:///{tmp_path}/state.db"), "job-a", "r1")
    with open_source(address) as source:
        result = scan(
            source, JobSpec(name="job-a", source="src-local", destination="dst-local"), manifest
        )
    rows = {r.path: r for r in manifest.rows()}
    assert set(rows) == {"a.txt", "caf%E9 100%25.txt", "far.txt", "z.txt"}
    bad = rows["caf%E9 100%25.txt"]
    assert (bad.action, bad.reason) == ("error", NOT_UTF8_REASON)
    assert (bad.size, bad.mtime_ns) == (len(b"latin-1 name"), 1_000_000_000 * 10**9)
    far = rows["far.txt"]
    assert far.action == "error" and "outside what can be recorded" in far.reason
    assert far.size == 3
    assert (result.files_seen, result.errors, result.files_to_copy) == (4, 2, 2)


def test_the_run_reports_every_entry_and_the_summary_adds_up(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    tree(src)
    summary = run_job(
        JobSpec(name="job-b", source="src-local", destination="dst-local"),
        SourceAddress(name="src-local", protocol="local", path=str(src)),
        DestinationAddress(name="dst-local", kind="local", path=str(dst), prefix="to/"),
        work_dir=str(tmp_path / "work"),
        run_id="r1",
        workers=1,
    )
    folder = dst / REPORT_ROOT / "job-b" / "r1"
    total = (folder / "job-b_total_list.txt").read_text().splitlines()
    errors = (folder / "job-b_error_list.txt").read_text().splitlines()
    assert f"file://{src}/caf%E9 100%25.txt\t12\t{iso_ns(10**18)}" in total
    assert [line.split("\t")[0] for line in errors] == ["to/caf%E9 100%25.txt", "to/far.txt"]
    assert summary["accounting"]["adds_up"] is True
    assert summary["subtasks"] == 1
    stored = json.loads((folder / "job-b_summary.json").read_text())
    assert stored["accounting"] == summary["accounting"]
    assert stored["hidden_kinds"] == []
