"""A very large job's plan, scaled down: a synthetic listing (no files anywhere) scanned
into the state database, partitioned, and worked through by copy tasks as a dry run, each
step in a process of its own whose peak memory stays bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.engine.jobs import JobSpec
from sharelift.engine.runner import run_job
from sharelift.storage.synthetic_source import file_bytes, file_path

REPO = Path(__file__).resolve().parents[2]
ENTRIES = 200_000
STEP = """
import json, resource, sys
from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.engine import steps
from sharelift.engine.jobs import JobSpec
from sharelift.engine.partition import Subtask, SubtaskGroup, group

step, entries, url, work = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
job = JobSpec(name="synthetic", source="synth", destination="null", subtask_files=1000,
              dry_run=True)
src = SourceAddress(name="synth", protocol="synthetic", share=str(entries))
dst = DestinationAddress(name="null", kind="local", path=work + "/nothing-written-here")
out = {}
with steps.open_run(job, "r1", src, dst, work_dir=work, state_url=url) as run:
    if step == "scan":
        out["files"] = steps.scan(run).files_to_copy
    elif step == "partition":
        out["subtasks"] = len(steps.partition(run))
    else:
        plain = [Subtask(s.index, s.start_row, s.stop_row, s.files, s.bytes)
                 for s in run.manifest.subtasks()]
        out["outcomes"] = sum(
            sum(steps.copy_group(run, g).values()) for g in group(plain, 20)
        )
        out["done"] = sum(s.done for s in run.manifest.subtasks())
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def run_step(step: str, url: str, work: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", STEP, step, str(ENTRIES), url, str(work)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_200k_synthetic_entries_are_planned_and_bookkept_within_512_mb_per_process(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    scanned = run_step("scan", url, tmp_path)
    partitioned = run_step("partition", url, tmp_path)
    kept = run_step("bookkeeping", url, tmp_path)
    assert scanned["files"] == ENTRIES
    assert partitioned["subtasks"] == ENTRIES // 1000
    assert (kept["outcomes"], kept["done"]) == (ENTRIES, ENTRIES // 1000)
    for step in (scanned, partitioned, kept):
        assert step["rss_mb"] < 512, step
    assert not (tmp_path / "nothing-written-here").exists()


def test_a_synthetic_source_copies_reproducible_files(tmp_path: Path) -> None:
    (tmp_path / "dst").mkdir()
    summary = run_job(
        JobSpec(name="synthetic-copy", source="synth", destination="dst", subtask_files=100),
        SourceAddress(name="synth", protocol="synthetic", share="1500"),
        DestinationAddress(name="dst", kind="local", path=str(tmp_path / "dst")),
        work_dir=str(tmp_path / "work"),
        workers=1,
    )
    assert (summary["state"], summary["files_copied"]) == ("Completed", 1500)
    for i in (0, 1, 999, 1000, 1499):
        assert (tmp_path / "dst" / file_path(i)).read_bytes() == file_bytes(i)
