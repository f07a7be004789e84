"""Full migrations through ``dag.test()`` from real NFS, SMB and local sources into ossd.

Every object's bytes and CRC-64 are checked against the source, and the three report
lists line by line.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from sharelift.checksum import crc64
from sharelift.engine.report import REPORT_ROOT, unescape_field
from tests.dags.conftest import point_it_src_at

AWKWARD = [
    "plain.txt",
    "with space/file one.txt",
    "unicode/êé/Hello, 世界.txt",
    "hash#and%percent+plus.txt",
    "deep/" + "/".join(f"d{i}" for i in range(12)) + "/leaf.bin",
    "empty.dat",
    "l" * 180 + ".txt",
]
JOB = "srv-migration"


def set_connection(conn_id: str, **fields: Any) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)


def make_files(root: Path) -> dict[str, bytes]:
    files = {}
    for i, rel in enumerate(AWKWARD):
        data = b"" if rel == "empty.dat" else os.urandom(500 + 37 * i)
        files[rel] = data
    for i in range(30):
        files[f"bulk/{i % 3}/f{i:03d}.bin"] = os.urandom(2000 + i)
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        p.write_bytes(data)
        p.chmod(0o644)
    for dirpath, _d, _f in os.walk(root):
        os.chmod(dirpath, 0o755)
    return files


@pytest.fixture(params=["local", "nfs", "smb"])
def migration(request, testbed_root: Path, oss_server, unique_name: str):  # type: ignore[no-untyped-def]
    backend = request.param
    root, url_base = point_it_src_at(request, backend, testbed_root / "dag-local", unique_name)
    bucket = f"dag-{unique_name}"
    oss_server.create_bucket(bucket)
    set_connection("it_dst", **oss_server.connection_fields(bucket))
    files = make_files(root)
    dest = oss_server.destination_address(bucket=bucket)
    return backend, root, files, dest, url_base


def run(dagbag, **conf: Any):  # type: ignore[no-untyped-def]
    params = {
        "job_name": JOB,
        "source_conn_id": "it_src",
        "destination_conn_id": "it_dst",
        "destination_prefix": "data/",
        "subtask_file_count": 8,
    }
    params.update(conf)
    return dagbag.get_dag("sharelift_migrate").test(run_conf=params)


def report_lines(dest_address, kind: str, run_id: str | None = None) -> list[list[str]]:  # type: ignore[no-untyped-def]
    from sharelift.storage import open_destination

    with open_destination(dest_address) as dest:
        keys = [
            o.key for o in dest.list(f"{REPORT_ROOT}/{JOB}/") if o.key.endswith(f"_{kind}_list.txt")
        ]
        runs = sorted(keys) if run_id is None else [k for k in keys if run_id in k]
        f = dest.open(runs[-1])
        text = f.read().decode()
        f.close()
    return [[unescape_field(f) for f in line.split("\t")] for line in text.splitlines()]


def test_every_file_lands_with_its_bytes_and_crc64_and_the_lists_match(dagbag, migration) -> None:  # type: ignore[no-untyped-def]
    from sharelift.storage import open_destination

    backend, root, files, dest_address, url_base = migration
    dr = run(dagbag)
    assert dr.state == "success"
    with open_destination(dest_address) as dest:
        for rel, data in files.items():
            info = dest.head(f"data/{rel}")
            assert info is not None, rel
            assert (info.size, info.crc64) == (len(data), crc64(data)), rel
            f = dest.open(f"data/{rel}")
            assert f.read() == data
            f.close()
    total = report_lines(dest_address, "total")
    assert sorted(r[0] for r in total) == sorted(f"{url_base}/{rel}" for rel in files)
    assert all(int(r[1]) == len(files[r[0][len(url_base) + 1 :]]) for r in total)
    completed = report_lines(dest_address, "completed")
    assert sorted(r[0] for r in completed) == sorted(f"data/{rel}" for rel in files)
    for name, size, crc, finished in completed:
        data = files[name[len("data/") :]]
        assert (int(size), int(crc)) == (len(data), crc64(data))
        assert finished.endswith("Z")
    assert report_lines(dest_address, "error") == []


def test_a_rerun_copies_nothing_and_a_touched_file_is_copied_again(dagbag, migration) -> None:  # type: ignore[no-untyped-def]
    backend, root, files, dest_address, _ = migration
    assert run(dagbag).state == "success"
    time.sleep(0.01)
    assert run(dagbag).state == "success"
    assert report_lines(dest_address, "completed") == []
    touched = root / "plain.txt"
    later = time.time_ns() + 5_000_000_000
    os.utime(touched, ns=(later, later))
    assert run(dagbag).state == "success"
    assert [r[0] for r in report_lines(dest_address, "completed")] == ["data/plain.txt"]


def test_a_newer_destination_object_is_left_alone(dagbag, migration) -> None:  # type: ignore[no-untyped-def]
    import io

    from sharelift.storage import open_destination

    backend, root, files, dest_address, _ = migration
    future = time.time_ns() + 3600 * 10**9
    with open_destination(dest_address) as dest:
        dest.put("data/plain.txt", io.BytesIO(b"newer"), 5, source_mtime_ns=future)
    assert run(dagbag).state == "success"
    with open_destination(dest_address) as dest:
        f = dest.open("data/plain.txt")
        assert f.read() == b"newer"
        f.close()
    assert "data/plain.txt" not in [r[0] for r in report_lines(dest_address, "completed")]


def test_an_unreadable_file_fails_alone_and_the_run_fails(dagbag, migration) -> None:  # type: ignore[no-untyped-def]
    backend, root, files, dest_address, _ = migration
    if backend == "local" and os.geteuid() == 0:
        pytest.skip("root reads every local file; covered by the conformance suite as nobody")
    (root / "plain.txt").chmod(0o000)
    dr = run(dagbag)
    assert dr.state == "failed"
    errors = report_lines(dest_address, "error")
    assert [r[0] for r in errors] == ["data/plain.txt"]
    assert "permission denied" in errors[0][3].lower()
    assert len(report_lines(dest_address, "completed")) == len(files) - 1


def test_a_retry_migrates_exactly_the_error_list(dagbag, migration) -> None:  # type: ignore[no-untyped-def]
    backend, root, files, dest_address, _ = migration
    if backend == "local" and os.geteuid() == 0:
        pytest.skip("root reads every local file; covered by the conformance suite as nobody")
    (root / "plain.txt").chmod(0o000)
    failed = run(dagbag)
    assert failed.state == "failed"
    (root / "plain.txt").chmod(0o644)
    retried = run(dagbag, retry_of=failed.run_id)
    assert retried.state == "success"
    assert [r[0] for r in report_lines(dest_address, "completed")] == ["data/plain.txt"]
    assert len(report_lines(dest_address, "total")) == 1
    assert report_lines(dest_address, "error") == []
