"""The resumable upload's checkpoint file: appended per part, forgiving of a crash mid-write."""

from __future__ import annotations

import json
from pathlib import Path

from sharelift.storage.checkpoint import CheckpointFile, PartRecord, UploadHeader, read_header

HEADER = UploadHeader(
    key="pre/big.bin", size=10_000 * 262_144, mtime_ns=123, part_size=262_144, upload_id="U1"
)


def bytes_written_by_this_process() -> int:
    """What the kernel counted as written through write() by this process (``wchar``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


def part(n: int) -> PartRecord:
    return PartRecord(etag=f"{n:032X}", size=262_144, crc=n * 7919)


def test_ten_thousand_recorded_parts_cost_bytes_linear_in_the_number_of_parts(
    tmp_path: Path,
) -> None:
    cp = CheckpointFile(str(tmp_path / "cp.json"))
    cp.start(HEADER)
    before = bytes_written_by_this_process()
    for n in range(1, 10_001):
        cp.record(n, part(n))
    written = bytes_written_by_this_process() - before
    one_line = len(json.dumps({"n": 10_000, "etag": "0" * 32, "size": 262_144, "crc": 79190000}))
    # A rewrite per part would write about 10,000 * 10,000 / 2 lines (hundreds of MB).
    assert written <= 10_000 * (one_line + 1) * 1.5
    got = cp.read()
    assert got is not None and got.header == HEADER
    assert got.parts == {n: part(n) for n in range(1, 10_001)}


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    cp = CheckpointFile(str(path))
    cp.start(HEADER)
    cp.record(1, part(1))
    cp.record(2, part(2))
    with open(path, "a") as f:  # a crash in the middle of writing part 3's line
        f.write('{"n": 3, "etag": "0000')
    got = cp.read()
    assert got is not None
    assert got.parts == {1: part(1), 2: part(2)}


def test_a_checkpoint_of_the_older_format_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text(
        json.dumps(
            {
                "key": HEADER.key,
                "size": HEADER.size,
                "mtime_ns": HEADER.mtime_ns,
                "part_size": HEADER.part_size,
                "upload_id": HEADER.upload_id,
                "parts": {"1": {"etag": "E1", "size": 262_144, "crc": 5}},
            }
        )
    )
    got = CheckpointFile(str(path)).read()
    assert got is not None and got.header == HEADER
    assert got.parts == {1: PartRecord("E1", 262_144, 5)}


def test_a_fresh_start_carries_known_parts_and_replaces_the_old_file(tmp_path: Path) -> None:
    cp = CheckpointFile(str(tmp_path / "sub" / "cp.json"))
    cp.start(HEADER, {4: part(4)})
    cp.record(5, part(5))
    cp.start(HEADER, {1: part(1)})
    got = cp.read()
    assert got is not None and got.parts == {1: part(1)}
    assert read_header(cp.path) == HEADER
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["cp.json"]  # no temporary left


def test_unreadable_or_foreign_files_are_no_checkpoint(tmp_path: Path) -> None:
    for i, text in enumerate(["", "not json", "[1, 2]", '{"key": "k"}']):
        path = tmp_path / f"cp{i}.json"
        path.write_text(text)
        assert CheckpointFile(str(path)).read() is None
        assert read_header(str(path)) is None
    assert CheckpointFile(str(tmp_path / "missing.json")).read() is None
    CheckpointFile(str(tmp_path / "missing.json")).remove()  # removing nothing is fine
