"""A hostile tree through ``dag.test()`` over local, NFS and SMB: every entry accounted for.

The tree holds names of every awkward kind (spaces, unicode, ``#%+;``, tabs, newlines, a
backslash, U+2028), names that are not UTF-8, unreadable files and folders, a folder that
may be read but not searched, a fifo, a socket, symlink loops, dangling and escaping
symlinks, 255-byte names, a key over OSS's 1,023 bytes, hardlinks and mtimes before 1970
and after 2100. The run must end with a report. Then this test walks the folder on disk
itself (``os.walk``/``lstat``, not through sharelift) and checks that every regular file
is completed or in the error list with a reason (itself, or a folder above it), or is of
a kind the summary declares hidden by the server; that the lists split into the same
fields on every line; that the total list names each entry once with the size and mtime
on disk; and that the summary adds up.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from sharelift.checksum import crc64
from sharelift.engine.names import NOT_UTF8_REASON, escape_field
from sharelift.engine.report import REPORT_ROOT, iso_ns
from tests.dags.conftest import point_it_src_at

from .test_full_migration_servers import set_connection

JOB = "hostile-tree"
PREFIX = "data/"
BEFORE_1970 = -31_536_000  # 1969-01-01
AFTER_2100 = 4_102_444_805  # 2100-01-01T00:00:05
BEYOND_2262 = 15_032_385_535  # 2446, ext4's latest time: beyond 64-bit nanoseconds
LONG_KEY = "long/" + "/".join(["k" * 250] * 5) + "/f.txt"  # over 1,023 bytes

AWKWARD = [
    "plain.txt",
    "with space/file one.txt",
    "unicode/êé/Hello, 世界.txt",
    "hash#%+;.txt",
    "percent%41.txt",
    "tab\tname.txt",
    "new\nline.txt",
    "cr\rname.txt",
    "back\\slash.txt",
    "separator\u2028line.txt",
    "n" * 251 + ".txt",  # 255 bytes
    "é" * 127 + "x",  # 255 bytes of UTF-8
    LONG_KEY,
    "hard-a.txt",
    "old.txt",
    "future.txt",
    "far-future.txt",
]
NOT_UTF8 = [b"latin\xe9.txt", b"sjis\x82\xa0.txt", b"bad\xff-dir/inner.txt"]


def build_hostile_tree(root: Path) -> None:
    for i, rel in enumerate(AWKWARD):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(100 + i))
    broot = os.fsencode(root)
    for raw in NOT_UTF8:
        os.makedirs(os.path.dirname(broot + b"/" + raw), exist_ok=True)
        with open(broot + b"/" + raw, "wb") as f:
            f.write(b"not utf-8 " + raw)
    os.link(root / "hard-a.txt", root / "hard-b.txt")
    os.utime(root / "old.txt", (BEFORE_1970, BEFORE_1970))
    os.utime(root / "future.txt", (AFTER_2100, AFTER_2100))
    os.utime(root / "far-future.txt", (BEYOND_2262, BEYOND_2262))
    (root / "noread.txt").write_bytes(b"locked")
    (root / "noread-dir").mkdir()
    (root / "noread-dir" / "inside.txt").write_bytes(b"locked in")
    (root / "shut" / "sub").mkdir(parents=True)
    (root / "shut" / "inner.txt").write_bytes(b"unreachable")
    (root / "shut" / "sub" / "deeper.txt").write_bytes(b"deeper")
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(root / "sock"))
    (root / "loop").symlink_to("loop")
    (root / "loop-dir").symlink_to(".")
    (root / "dangling").symlink_to("nowhere")
    (root / "escape").symlink_to("/etc/passwd")
    (root / "escape-dir").symlink_to("../..")
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.chmod(path, 0o644)
    (root / "noread.txt").chmod(0o000)
    (root / "noread-dir").chmod(0o000)
    (root / "shut").chmod(0o644)


def disk_files(root: Path) -> dict[str, os.stat_result]:
    """Every regular file under ``root`` as the walk's relative name (bytes decoded with
    'surrogateescape'), found by this test on its own."""
    out: dict[str, os.stat_result] = {}
    broot = os.fsencode(root)
    for dirpath, _dirnames, filenames in os.walk(broot):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                rel = os.path.relpath(path, broot).decode("utf-8", "surrogateescape")
                out[rel] = st
    return out


def is_storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@pytest.fixture(params=["local", "nfs", "smb"])
def hostile(request, testbed_root: Path, oss_server, unique_name: str):  # type: ignore[no-untyped-def]
    backend = request.param
    root, url_base = point_it_src_at(request, backend, testbed_root / "dag-hostile", unique_name)
    bucket = f"hostile-{unique_name}"
    oss_server.create_bucket(bucket)
    set_connection("it_dst", **oss_server.connection_fields(bucket))
    build_hostile_tree(root)
    try:
        yield backend, root, oss_server.destination_address(bucket=bucket), url_base
    finally:
        for folder in ("noread-dir", "shut"):
            (root / folder).chmod(0o755)


def report_files(dest_address) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    from sharelift.storage import open_destination

    out = {}
    with open_destination(dest_address) as dest:
        for info in dest.list(f"{REPORT_ROOT}/{JOB}/"):
            f = dest.open(info.key)
            out[info.key.rsplit("/", 1)[-1]] = f.read()
            f.close()
    return out


def lines(text: bytes, fields: int) -> list[list[str]]:
    rows = [line.split("\t") for line in text.decode("utf-8").split("\n")[:-1]]
    for row in rows:
        assert len(row) == fields, row
    return rows


def test_every_regular_file_on_disk_is_completed_or_in_the_error_list(dagbag, hostile) -> None:  # type: ignore[no-untyped-def]
    from sharelift.storage import open_destination

    backend, root, dest_address, url_base = hostile
    params: dict[str, Any] = {
        "job_name": JOB,
        "source_conn_id": "it_src",
        "destination_conn_id": "it_dst",
        "destination_prefix": PREFIX,
        "subtask_file_count": 8,
        "retry_of": None,  # a first run, whatever an earlier test's run left in the params
    }
    dr = dagbag.get_dag("sharelift_migrate").test(run_conf=params)
    assert dr.state == "failed"  # some files cannot be migrated; the report says which

    files = report_files(dest_address)
    summary = json.loads(files[f"{JOB}_summary.json"])
    total = lines(files[f"{JOB}_total_list.txt"], 3)
    completed = lines(files[f"{JOB}_completed_list.txt"], 4)
    errors = lines(files[f"{JOB}_error_list.txt"], 4)

    # The summary adds up, and the lists agree with it.
    assert summary["accounting"]["adds_up"] is True, summary["accounting"]
    assert summary["files_total"] == len(total)
    assert summary["accounting"]["files_seen"] == len(total)  # nothing left out here
    assert summary["files_copied"] == len(completed)
    assert summary["files_failed"] == len(errors)
    assert isinstance(summary["subtasks"], int) and summary["subtasks"] >= 1
    assert "%XX" in summary["name_escaping"]
    hidden = summary["hidden_kinds"]
    assert bool(hidden) == (backend == "smb")

    # Each entry once in the total list; each file in at most one of the other two.
    total_names = [row[0] for row in total]
    assert len(total_names) == len(set(total_names))
    done = {row[0]: row for row in completed}
    failed = {row[0]: row[3] for row in errors}
    assert not set(done) & set(failed)
    assert all(reason for reason in failed.values())

    on_disk = disk_files(root)
    with open_destination(dest_address) as dest:
        for rel in on_disk:
            name = escape_field(PREFIX + rel)
            if name in done:
                f = dest.open(PREFIX + rel)
                data = f.read()
                f.close()
                with open(os.fsencode(root) + b"/" + os.fsencode(rel), "rb") as src:
                    assert data == src.read(), rel
                assert int(done[name][2]) == crc64(data)
                continue
            if name in failed:
                continue
            parts = rel.split("/")
            above = [escape_field(PREFIX + "/".join(parts[:i])) for i in range(1, len(parts))]
            if any(folder in failed for folder in above):
                continue  # a folder above it could not be entered: that row says why
            if backend == "smb" and not is_storable(rel):
                assert "names that are not valid UTF-8" in hidden
                continue
            pytest.fail(f"{rel!r} is neither completed nor in the error list ({backend})")

    # The total list shows each listed entry with the size and mtime on disk.
    by_url = {escape_field(f"{url_base}/{rel}"): st for rel, st in on_disk.items()}
    for url, size, mtime in total:
        st = by_url.get(url)
        if st is None:
            continue  # a symlink, a special file or a folder: not a regular file
        reason = failed.get(PREFIX + url[len(escape_field(url_base)) + 1 :], "")
        if "cannot reach it" in reason:
            continue  # NFSv3: its folder lists the name but the server gives no attributes
        assert int(size) == st.st_size, url
        if "outside what can be recorded" in reason:
            continue  # past 2262: reported as an error, its mtime clamped
        if backend == "nfs" and st.st_mtime_ns < 0:
            continue  # NFSv3 carries unsigned seconds (see sharelift.storage.nfs_source)
        if backend == "nfs" and st.st_mtime_ns >= 2**32 * 10**9:
            continue  # likewise: NFSv3 sends the low 32 bits of the seconds
        precision = 100 if backend == "smb" else 1  # SMB: 100 ns FILETIME ticks
        assert mtime == iso_ns(st.st_mtime_ns // precision * precision), url

    # Specific reasons.
    assert "1023" in failed[escape_field(PREFIX + LONG_KEY)]
    shut = failed.get(PREFIX + "shut")
    if backend == "local":
        assert shut is None  # root enters every folder
    else:
        assert shut is not None and "permission denied" in shut
        assert "permission denied" in failed[PREFIX + "noread.txt"].lower()
    if backend != "smb":
        for raw in NOT_UTF8[:2]:
            name = escape_field(PREFIX + raw.decode("utf-8", "surrogateescape"))
            assert failed[name] == escape_field(NOT_UTF8_REASON), name
        skipped = summary["skipped_reasons"]
        assert sum(n for r, n in skipped.items() if r.startswith("symlink")) == 5
        assert sum(n for r, n in skipped.items() if r.startswith("special file")) == 2
    assert escape_field(PREFIX + "hard-a.txt") in done
    assert escape_field(PREFIX + "hard-b.txt") in done
