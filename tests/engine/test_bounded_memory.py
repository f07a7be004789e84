"""One copy process stays within 256 MB of resident memory, whatever the file sizes.

Each job runs in a process of its own (``tests.engine.copy_peak_rss``) and its peak RSS
is the kernel's ``VmHWM`` of that process, which it prints (not ``ru_maxrss``, which
carries the test process's own peak over fork and exec): memory, not a timing, so
asserting it is fair on a busy machine. The source files are sparse (written in no
time, read as zeros); two subtasks on threads with several big files each put many files
in flight in one process at once, each large enough for a multipart upload.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.engine.copy_peak_rss import SECRET_ENV

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
LIMIT_MB = 256
FILES = 6
FILE_MIB = 128


@pytest.fixture
def big_files(tmp_path: Path) -> Path:
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(FILES):
        with open(folder / f"big-{i}.bin", "wb") as f:
            f.truncate(FILE_MIB * MIB)  # sparse: no disk, read back as zeros
    return folder


def copy_in_child(
    source_root: Path, destination: dict[str, Any], work_dir: Path, secret: str = ""
) -> tuple[dict[str, Any], float]:
    """The job's counts and the child's peak RSS in MB."""
    args = {
        "source_root": str(source_root),
        "destination": destination,
        "work_dir": str(work_dir),
        "workers": 2,
        "subtask_files": FILES // 2,
    }
    env = dict(os.environ, **{SECRET_ENV: secret})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "include")])
    env.pop("MALLOC_ARENA_MAX", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.copy_peak_rss", json.dumps(args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate()
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    counts = json.loads(out.decode().strip().splitlines()[-1])
    return counts, counts["peak_rss_mb"]


def test_a_copy_of_big_files_into_oss_stays_within_256_mb(
    big_files: Path, tmp_path: Path, oss_server: Any, unique_name: str
) -> None:
    bucket = oss_server.create_bucket(unique_name)
    try:
        address = oss_server.destination_address(bucket=unique_name)
        destination = {
            "name": "dst",
            "kind": "oss",
            "endpoint": address.endpoint,
            "bucket": unique_name,
            "access_key_id": address.access_key_id,
            "region": address.region,
        }
        counts, peak_mb = copy_in_child(
            big_files, destination, tmp_path / "work", oss_server.access_key_secret.reveal()
        )
    finally:
        for obj in list(bucket.list_objects().object_list):
            bucket.delete_object(obj.key)
    assert counts["files_copied"] == FILES and counts["files_failed"] == 0
    assert counts["bytes_copied"] == FILES * FILE_MIB * MIB
    assert peak_mb < LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"


def test_a_copy_of_big_files_into_a_local_folder_stays_within_256_mb(
    big_files: Path, tmp_path: Path
) -> None:
    target = tmp_path / "dst"
    target.mkdir()
    destination = {"name": "dst", "kind": "local", "path": str(target)}
    try:
        counts, peak_mb = copy_in_child(big_files, destination, tmp_path / "work")
    finally:
        shutil.rmtree(target, ignore_errors=True)
    assert counts["files_copied"] == FILES and counts["files_failed"] == 0
    assert peak_mb < LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"
