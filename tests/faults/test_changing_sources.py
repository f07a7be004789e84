"""Source files written to while they are copied: never a torn object recorded copied.

A 3 MiB file is read in 1 MiB pieces; after the first piece the test changes the file
(through the local filesystem under the export or share, as another user of the server
would). The copy must notice, read the file again and store its new bytes; a file that
changes on every read fails with a reason and leaves no object.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.conftest import Copy, assert_retry_finishes, make_tree, record

SIZE = 3 * 1024 * 1024


@pytest.fixture(params=["local", "nfs", "smb"])
def source(request, testbed_root: Path, unique_name: str):  # type: ignore[no-untyped-def]
    from sharelift.addresses import SourceAddress

    if request.param == "local":
        root = testbed_root / "changing-local" / unique_name
        root.mkdir(parents=True, mode=0o755)
        return request.param, root, SourceAddress(name="src", protocol="local", path=str(root))
    server = request.getfixturevalue(f"{request.param}_server")
    base = Path(server.export_dir if request.param == "nfs" else server.share_dir)
    root = base / unique_name
    root.mkdir(mode=0o755)
    return request.param, root, server.source_address(path=unique_name)


def rewrite_in_place(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(random.randbytes(SIZE))


def rewrite_keeping_mtime(path: Path) -> None:
    """Same size, and the old mtime put back: only the change time tells."""
    st = path.stat()
    rewrite_in_place(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def append(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"more bytes at the end")


def truncate(path: Path) -> None:
    os.truncate(path, SIZE // 2 + 7)


def copy_changing(
    source, oss_server, tmp_path: Path, unique_name: str, change: Callable[[Path], None], times: int
):  # type: ignore[no-untyped-def]
    kind, root, address = source
    make_tree(root, small=10)
    victim = root / "big" / "victim.bin"
    victim.write_bytes(random.randbytes(SIZE))
    victim.chmod(0o644)
    bucket = f"c-{unique_name}"
    oss_server.create_bucket(bucket)
    direct = oss_server.destination_address(bucket=bucket)
    copy = Copy(tmp_path, root, address, direct)
    read = {"bytes": 0, "changes": 0}
    before_victim = sum(  # files are copied in key order
        p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() < "big/victim.bin"
    )

    def progress(nbytes: int) -> None:
        read["bytes"] += nbytes
        if read["bytes"] > before_victim and read["changes"] < times:
            read["changes"] += 1
            change(victim)

    counts, seconds = copy.run(progress=progress)
    return copy, direct, counts, seconds, read["changes"]


@pytest.mark.parametrize(
    "change", [rewrite_in_place, append, truncate, rewrite_keeping_mtime], ids=lambda f: f.__name__
)
def test_a_file_changed_once_while_read_is_read_again_and_stored_as_it_is_now(
    source, oss_server, tmp_path: Path, unique_name: str, change
) -> None:  # type: ignore[no-untyped-def]
    if change is rewrite_keeping_mtime and source[0] == "smb":
        pytest.skip("Samba answers ChangeTime with the mtime (Windows servers keep it apart)")
    copy, direct, counts, seconds, changes = copy_changing(
        source, oss_server, tmp_path, unique_name, change, times=1
    )
    assert changes == 1
    tally = copy.check(direct, seconds)
    record(f"{source[0]}: file {change.__name__} once mid-read", tally)
    assert (tally.corrupt, tally.missing, tally.failed) == (0, 0, 0), tally.reasons
    assert tally.ok == counts["copied"]
    assert tally.leftover_uploads == 0


def test_a_file_that_changes_on_every_read_fails_and_leaves_no_object(
    source, oss_server, tmp_path: Path, unique_name: str
) -> None:  # type: ignore[no-untyped-def]
    copy, direct, counts, seconds, changes = copy_changing(
        source, oss_server, tmp_path, unique_name, rewrite_in_place, times=1000
    )
    tally = copy.check(direct, seconds)
    record(f"{source[0]}: file rewritten on every read", tally)
    assert (tally.corrupt, tally.missing) == (0, 0)
    assert tally.failed == 1
    (reason,) = tally.reasons
    assert "kept changing while being read" in reason
    from sharelift.storage import open_destination

    with open_destination(direct) as dest:
        assert dest.head("big/victim.bin") is None
    assert tally.leftover_uploads == 0
    # Once the file is left alone, a retry stores it.
    assert_retry_finishes(copy, direct, tally)
