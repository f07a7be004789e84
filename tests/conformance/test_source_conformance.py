"""What every source backend must do (see the contract in ``sharelift.storage.base``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sharelift.errors import AddressError, NotAFile, SourceFileNotFound, SourceFilePermissionDenied
from sharelift.storage import EntryKind, Source

from .conftest import SourceEnv

AWKWARD_NAMES = [
    "with space.txt",
    "unicode-êé-Hello, 世界.txt",
    "hash#tag.txt",
    "percent%20encoded.txt",
    "plus+sign.txt",
    "semi;colon & amp='quote'.txt",
    "trailing.dots..txt",
    "l" * 200 + ".txt",
]


def write(root: Path, rel: str, data: bytes = b"x", mode: int = 0o644) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def read_all(source: Source, rel: str) -> bytes:
    with source.open(rel) as f:
        chunks = []
        while chunk := f.read(1024 * 1024):
            chunks.append(chunk)
        return b"".join(chunks)


def files_of(source: Source) -> dict[str, object]:
    return {e.path: e for e in source.walk() if e.kind is EntryKind.FILE}


def test_check_passes_for_a_reachable_folder(source_env: SourceEnv) -> None:
    source_env.source().check()


def test_check_names_the_address_when_the_sub_folder_is_missing(source_env: SourceEnv) -> None:
    missing = source_env.address.path.rstrip("/") + "/no-such-folder"
    with pytest.raises(AddressError) as info:
        source_env.source(path=missing).check()
    assert info.value.address == source_env.address.name


def test_walk_reports_size_and_mtime_of_each_file(source_env: SourceEnv) -> None:
    write(source_env.root, "a.txt", b"hello")
    write(source_env.root, "sub/b.bin", os.urandom(3000))
    os.utime(source_env.root / "a.txt", ns=(1_600_000_000_123_456_700, 1_600_000_000_123_456_700))
    found = files_of(source_env.source())
    assert set(found) == {"a.txt", "sub/b.bin"}
    for rel, entry in found.items():
        st = os.stat(source_env.root / rel)
        assert entry.size == st.st_size
        assert abs(entry.mtime_ns - st.st_mtime_ns) < source_env.mtime_precision_ns


def test_walk_is_depth_first_and_sorted_within_each_folder(source_env: SourceEnv) -> None:
    for rel in ["b/2.txt", "b/1.txt", "a.txt", "c.txt", "b/z/9.txt"]:
        write(source_env.root, rel)
    paths = [e.path for e in source_env.source().walk()]
    assert paths == ["a.txt", "b", "b/1.txt", "b/2.txt", "b/z", "b/z/9.txt", "c.txt"]


@pytest.mark.parametrize("name", AWKWARD_NAMES, ids=lambda n: n[:20])
def test_awkward_names_are_listed_and_read_back_exactly(source_env: SourceEnv, name: str) -> None:
    data = f"content of {name}".encode()
    write(source_env.root, f"dir with space/{name}", data)
    source = source_env.source()
    assert f"dir with space/{name}" in files_of(source)
    assert read_all(source, f"dir with space/{name}") == data


def test_a_deep_path_is_listed_and_read(source_env: SourceEnv) -> None:
    rel = "/".join(f"level{i:02d}" for i in range(24)) + "/deep.txt"
    write(source_env.root, rel, b"deep")
    source = source_env.source()
    assert rel in files_of(source)
    assert read_all(source, rel) == b"deep"


def test_zero_byte_file_is_listed_with_size_zero_and_reads_empty(source_env: SourceEnv) -> None:
    write(source_env.root, "empty.dat", b"")
    source = source_env.source()
    assert files_of(source)["empty.dat"].size == 0
    assert read_all(source, "empty.dat") == b""


def test_a_large_file_reads_back_byte_for_byte(source_env: SourceEnv) -> None:
    data = os.urandom(5 * 1024 * 1024 + 17)
    write(source_env.root, "big.bin", data)
    assert read_all(source_env.source(), "big.bin") == data


def test_an_empty_folder_is_reported_as_a_folder(source_env: SourceEnv) -> None:
    (source_env.root / "empty-dir").mkdir()
    entries = {e.path: e for e in source_env.source().walk()}
    assert entries["empty-dir"].kind is EntryKind.DIR


def test_a_symlink_out_of_the_share_is_never_followed(
    source_env: SourceEnv, tmp_path: Path
) -> None:
    outside = source_env.root.parent / f"{source_env.root.name}-outside.txt"
    outside.write_bytes(b"SECRET OUTSIDE THE SHARE")
    try:
        (source_env.root / "escape").symlink_to(outside)
        (source_env.root / "escape-dir").symlink_to(source_env.root.parent)
        write(source_env.root, "normal.txt", b"normal")
        source = source_env.source()
        entries = {e.path: e for e in source.walk()}
        assert "normal.txt" in entries
        assert not any(p.startswith("escape-dir/") for p in entries)
        for rel, entry in entries.items():
            if entry.kind is EntryKind.FILE:
                assert read_all(source, rel) != b"SECRET OUTSIDE THE SHARE"
        if source.features.reports_symlinks:
            assert entries["escape"].kind is EntryKind.SYMLINK
            with pytest.raises((NotAFile, SourceFileNotFound)):
                read_all(source, "escape")
    finally:
        outside.unlink()


def test_a_file_deleted_after_the_walk_is_reported_as_not_found(source_env: SourceEnv) -> None:
    write(source_env.root, "vanishing.txt", b"soon gone")
    source = source_env.source()
    assert "vanishing.txt" in files_of(source)
    (source_env.root / "vanishing.txt").unlink()
    with pytest.raises(SourceFileNotFound):
        read_all(source, "vanishing.txt")


def test_stat_of_a_missing_file_is_reported_as_not_found(source_env: SourceEnv) -> None:
    with pytest.raises(SourceFileNotFound):
        source_env.source().stat("nope.txt")


def test_opening_a_folder_is_refused_as_not_a_file(source_env: SourceEnv) -> None:
    (source_env.root / "folder").mkdir()
    with pytest.raises(NotAFile):
        source_env.source().open("folder")


def test_an_unreadable_file_is_a_per_file_error_and_others_still_read(
    source_env: SourceEnv,
) -> None:
    write(source_env.root, "locked.txt", b"no", mode=0o000)
    write(source_env.root, "open.txt", b"yes")
    address = source_env.address

    def attempt() -> tuple[list[str], str, bytes]:
        from sharelift.storage import open_source

        with open_source(address) as source:
            listed = sorted(files_of(source))
            try:
                read_all(source, "locked.txt")
                outcome = "read"
            except SourceFilePermissionDenied:
                outcome = "permission-denied"
            return listed, outcome, read_all(source, "open.txt")

    listed, outcome, other = source_env.run_unprivileged(attempt)
    assert listed == ["locked.txt", "open.txt"]
    assert outcome == "permission-denied"
    assert other == b"yes"


def test_an_unlistable_folder_is_reported_and_the_walk_goes_on(source_env: SourceEnv) -> None:
    write(source_env.root, "closed/inside.txt")
    write(source_env.root, "later.txt")
    (source_env.root / "closed").chmod(0o000)
    address = source_env.address

    def attempt() -> list[tuple[str, str, bool]]:
        from sharelift.storage import open_source

        with open_source(address) as source:
            return [(e.path, e.kind.value, e.error is not None) for e in source.walk()]

    entries = source_env.run_unprivileged(attempt)
    paths = [p for p, _, _ in entries]
    assert "later.txt" in paths
    assert "closed/inside.txt" not in paths
    assert any(p == "closed" and err for p, _, err in entries)


def test_display_url_names_the_file_without_credentials(source_env: SourceEnv) -> None:
    source = source_env.source()
    url = source.display_url("sub/file.txt")
    assert url.endswith("/sub/file.txt")
    assert "@" not in url
    password = source_env.address.password.reveal()
    if password:
        assert password not in url
        assert password not in repr(source)
        assert password not in repr(source_env.address)


def test_a_name_the_protocol_cannot_carry_is_read_or_reported_never_lost(
    source_env: SourceEnv,
) -> None:
    write(source_env.root, "question?mark.txt", b"q")
    write(source_env.root, "star*and|pipe.txt", b"s")
    source = source_env.source()
    entries = {e.path: e for e in source.walk()}
    for name, data in [("question?mark.txt", b"q"), ("star*and|pipe.txt", b"s")]:
        assert name in entries, f"{name} silently missing from the walk"
        entry = entries[name]
        if entry.error is None:
            assert read_all(source, name) == data
        else:
            assert entry.error  # the reason says why it cannot be read over this protocol


def test_a_clone_is_an_independent_connection_to_the_same_files(source_env: SourceEnv) -> None:
    write(source_env.root, "a.txt", b"same bytes")
    source = source_env.source()
    clone = source.clone()
    try:
        assert clone is not source
        assert type(clone) is type(source)
        source.close()
        assert read_all(clone, "a.txt") == b"same bytes"
    finally:
        clone.close()
