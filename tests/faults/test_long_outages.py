"""A minute without the server, with the default retry policy: no file fails.

The defaults (``RetryPolicy()``: a request keeps trying for 90 s, a file for 300 s) are
meant to ride out a server that is gone for a minute. One test proves it for the three
servers at once, to pay for the minute only once: three copies run side by side (local
folder -> ossd, NFS -> local folder, SMB -> local folder), each server is killed with
SIGKILL once every copy has done 20 files, and all three come back on the same ports 60 s
later. Every copy must then finish with every object byte-identical and no file failed.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

from sharelift.addresses import DestinationAddress
from sharelift.storage import RetryPolicy
from tests.faults.conftest import TRANSFER, Copy, make_tree, record

OUTAGE = 60.0
DEFAULTS = dataclasses.replace(TRANSFER, retry=RetryPolicy())


class Side:
    """One copy on a thread of its own that stops at its 20th file until the servers are
    down (the copy that settles its 20th file waits there; fewer than a handful of files
    are in flight), so that every copy meets the outage with most of its files to do."""

    def __init__(self, name: str, copy: Copy, direct: Any, files: dict[str, bytes]) -> None:
        self.name, self.copy, self.direct, self.files = name, copy, direct, files
        self.twenty = threading.Event()
        self.released = threading.Event()
        self.outcome: dict[str, Any] = {}
        self._done = 0
        self.thread = threading.Thread(target=self._run, name=f"copy-{name}")

    def _on_file(self, _row: object) -> None:
        self._done += 1
        if self._done == 20:
            self.twenty.set()
            self.released.wait(timeout=300)

    def _run(self) -> None:
        try:
            self.outcome["counts"], self.outcome["seconds"] = self.copy.run(on_file=self._on_file)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            self.outcome["error"] = exc
        self.twenty.set()
        self.released.set()


def local_folder(tmp_path: Path, name: str) -> DestinationAddress:
    folder = tmp_path / name
    folder.mkdir()
    return DestinationAddress(name=name, kind="local", path=str(folder))


def test_ossd_nfs_ganesha_and_smbd_down_for_60_s_mid_copy_lose_no_file(
    local_tree, own_nfs, own_smb, tmp_path: Path
) -> None:
    from sharelift.local.ossd import OssServer

    root, source_address = local_tree
    sides: list[Side] = []
    with OssServer(tmp_path / "ossd") as ossd:
        ossd.create_bucket("long-outage")
        to_oss = ossd.destination_address(bucket="long-outage")
        to_nfs_folder = local_folder(tmp_path, "from-nfs")
        to_smb_folder = local_folder(tmp_path, "from-smb")
        nfs_root, smb_root = Path(own_nfs.export_dir), Path(own_smb.share_dir)
        for name, src_root, src, dst in (
            ("ossd", root, source_address, to_oss),
            ("nfs-ganesha", nfs_root, own_nfs.source_address(), to_nfs_folder),
            ("smbd", smb_root, own_smb.source_address(), to_smb_folder),
        ):
            files = make_tree(src_root)
            work = tmp_path / f"work-{name}"
            work.mkdir()
            sides.append(Side(name, Copy(work, src_root, src, dst, DEFAULTS), dst, files))

        for side in sides:
            side.thread.start()
        for side in sides:
            assert side.twenty.wait(timeout=180), f"{side.name}: 20 files never done"
        assert all(side.thread.is_alive() for side in sides), "a copy ended before the fault"
        # From this thread: the test bed's servers die with the thread that started them.
        ossd.kill()
        own_nfs.kill()
        own_smb.kill()
        killed = time.monotonic()
        for side in sides:
            side.released.set()
        time.sleep(OUTAGE)
        ossd.start(same_port=True)
        own_nfs.start(same_ports=True)
        own_smb.start(same_port=True)
        back = time.monotonic() - killed

        for side in sides:
            side.thread.join(timeout=600)
            assert not side.thread.is_alive(), f"{side.name}: the copy never ended"
        for side in sides:
            if "error" in side.outcome:
                raise side.outcome["error"]
            tally = side.copy.check(side.direct, side.outcome["seconds"])
            record(f"{side.name} killed, back after {back:.0f} s (default retry)", tally)
            assert (tally.corrupt, tally.missing, tally.empty_reasons) == (0, 0, 0), side.name
            assert tally.leftover_uploads == 0, side.name
            assert tally.failed == 0, (side.name, tally.reasons)
            assert tally.ok == len(side.files), side.name
