"""Servers killed mid-copy and back after 5 s on the same ports: every file still arrives.

Each test runs its own server (the session's are shared by other tests), kills it with
SIGKILL once 20 files are done and starts it again 5 s later on the same ports.
"""

from __future__ import annotations

import threading
from pathlib import Path

from tests.faults.conftest import Copy, make_tree, record

OUTAGE = 5.0


def finish(copy: Copy, direct, server, name: str, files) -> None:  # type: ignore[no-untyped-def]
    """Copy on a thread; kill ``server`` once 20 files are done and start it again on the
    same ports ``OUTAGE`` seconds later, from this thread (the test bed's servers die with
    the thread that started them)."""
    twenty = threading.Event()
    outcome: dict[str, object] = {}

    def on_file(_row: object, seen: list[int] = [0]) -> None:  # noqa: B006 - a counter
        seen[0] += 1
        if seen[0] == 20:
            twenty.set()

    def run() -> None:
        try:
            outcome["counts"], outcome["seconds"] = copy.run(on_file=on_file)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            outcome["error"] = exc
        twenty.set()

    worker = threading.Thread(target=run, name="copy")
    worker.start()
    assert twenty.wait(timeout=120)
    assert worker.is_alive(), "the copy ended before the fault could strike"
    server.restart(downtime=OUTAGE)
    worker.join(timeout=600)
    assert not worker.is_alive()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    tally = copy.check(direct, outcome["seconds"])  # type: ignore[arg-type]
    record(name, tally)
    assert (tally.corrupt, tally.missing, tally.empty_reasons, tally.leftover_uploads) == (
        0,
        0,
        0,
        0,
    )
    assert tally.failed == 0, tally.reasons
    assert tally.ok == len(files)


def test_ossd_killed_mid_copy_and_back_after_5_s_loses_no_file(
    local_tree, tmp_path: Path, unique_name: str
) -> None:
    from sharelift.local.ossd import OssServer

    root, source_address = local_tree
    files = make_tree(root)
    with OssServer(tmp_path / "ossd") as server:
        server.create_bucket("outage")
        direct = server.destination_address(bucket="outage")
        copy = Copy(tmp_path, root, source_address, direct)
        finish(copy, direct, server, "ossd killed, back after 5 s", files)


def test_nfs_ganesha_killed_mid_copy_and_back_after_5_s_loses_no_file(
    own_nfs, oss_server, tmp_path: Path, unique_name: str
) -> None:
    root = Path(own_nfs.export_dir)
    files = make_tree(root)
    oss_server.create_bucket(f"n-{unique_name}")
    direct = oss_server.destination_address(bucket=f"n-{unique_name}")
    copy = Copy(tmp_path, root, own_nfs.source_address(), direct)
    finish(copy, direct, own_nfs, "nfs-ganesha killed, back after 5 s", files)


def test_smbd_killed_mid_copy_and_back_after_5_s_loses_no_file(
    own_smb, oss_server, tmp_path: Path, unique_name: str
) -> None:
    root = Path(own_smb.share_dir)
    files = make_tree(root)
    oss_server.create_bucket(f"s-{unique_name}")
    direct = oss_server.destination_address(bucket=f"s-{unique_name}")
    copy = Copy(tmp_path, root, own_smb.source_address(), direct)
    finish(copy, direct, own_smb, "smbd killed, back after 5 s", files)
