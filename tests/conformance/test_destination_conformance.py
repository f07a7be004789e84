"""What every destination backend must do (see the contract in ``sharelift.storage.base``)."""

from __future__ import annotations

import io
import os

import pytest

from sharelift.checksum import crc64
from sharelift.errors import AddressError, SourceFileChanged
from sharelift.storage import Destination

from .conftest import DestinationEnv

AWKWARD_KEYS = [
    "with space.txt",
    "unicode/êé/Hello, 世界.txt",
    "hash#tag.txt",
    "question?mark.txt",
    "percent%20encoded.txt",
    "plus+sign.txt",
    "amp&eq=semi;.txt",
    "deep/" + "/".join(f"d{i}" for i in range(20)) + "/leaf.txt",
    "l" * 200 + ".txt",
]

MTIME = 1_700_000_000_123_456_789


class FailingStream:
    """Gives ``fail_after`` bytes, then fails like a source server that went away."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        self._data = io.BytesIO(data)
        self._left = fail_after

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            raise ConnectionError("source server went away")
        chunk = self._data.read(min(n if n >= 0 else self._left, self._left))
        self._left -= len(chunk)
        return chunk


def read_back(dest: Destination, key: str) -> bytes:
    f = dest.open(key)
    try:
        return f.read()
    finally:
        f.close()


def leftovers(env: DestinationEnv, dest: Destination) -> list[str]:
    """Anything an interrupted put left behind: unfinished uploads or temporary files."""
    if env.backend == "oss":
        return [k for k, _ in dest.list_multipart_uploads()]  # type: ignore[attr-defined]
    root = env.address.path
    return [n for _, _, names in os.walk(root) for n in names if "sharelift-tmp" in n]


def test_check_passes_for_a_reachable_destination(destination_env: DestinationEnv) -> None:
    destination_env.destination().check()


def test_put_then_head_gives_size_crc64_and_source_mtime(destination_env: DestinationEnv) -> None:
    dest = destination_env.destination()
    data = os.urandom(10_000)
    result = dest.put("a/b.bin", io.BytesIO(data), len(data), source_mtime_ns=MTIME, mode=0o640)
    assert result.crc64 == crc64(data)
    info = dest.head("a/b.bin")
    assert info is not None
    assert (info.size, info.crc64, info.source_mtime_ns, info.mode) == (
        len(data),
        crc64(data),
        MTIME,
        0o640,
    )


@pytest.mark.parametrize("key", AWKWARD_KEYS, ids=lambda k: k[:20])
def test_awkward_keys_round_trip(destination_env: DestinationEnv, key: str) -> None:
    dest = destination_env.destination()
    data = key.encode() * 3
    dest.put(key, io.BytesIO(data), len(data))
    assert read_back(dest, key) == data
    assert [o.key for o in dest.list()] == [key]


def test_zero_byte_object_round_trips(destination_env: DestinationEnv) -> None:
    dest = destination_env.destination()
    result = dest.put("empty", io.BytesIO(b""), 0)
    assert result.crc64 == 0
    info = dest.head("empty")
    assert info is not None and info.size == 0
    assert read_back(dest, "empty") == b""


def test_object_above_the_multipart_threshold_keeps_its_crc64(
    destination_env: DestinationEnv,
) -> None:
    dest = destination_env.destination()
    data = os.urandom(destination_env.transfer.multipart_threshold * 2 + 12345)
    result = dest.put("big.bin", io.BytesIO(data), len(data), source_mtime_ns=MTIME)
    assert result.crc64 == crc64(data)
    info = dest.head("big.bin")
    assert info is not None
    assert (info.size, info.crc64, info.source_mtime_ns) == (len(data), crc64(data), MTIME)
    assert read_back(dest, "big.bin") == data


@pytest.mark.parametrize("size_factor", [0.5, 3], ids=["simple", "multipart"])
def test_an_aborted_put_leaves_nothing_and_keeps_the_old_object(
    destination_env: DestinationEnv, size_factor: float
) -> None:
    dest = destination_env.destination()
    dest.put("keep.bin", io.BytesIO(b"old"), 3)
    size = int(destination_env.transfer.multipart_threshold * size_factor)
    data = os.urandom(size)
    with pytest.raises(Exception):  # noqa: B017 - whatever the source raised
        dest.put("keep.bin", FailingStream(data, size // 2), size)
    with pytest.raises(Exception):  # noqa: B017
        dest.put("new.bin", FailingStream(data, size // 2), size)
    assert read_back(dest, "keep.bin") == b"old"
    assert dest.head("new.bin") is None
    if not destination_env.resumable:
        assert leftovers(destination_env, dest) == []


def test_a_stream_shorter_than_announced_is_refused_and_leaves_nothing(
    destination_env: DestinationEnv,
) -> None:
    dest = destination_env.destination()
    with pytest.raises(SourceFileChanged):
        dest.put("short.bin", io.BytesIO(b"12345"), 10)
    big = destination_env.transfer.multipart_threshold + 1000
    with pytest.raises(SourceFileChanged):
        dest.put("short-big.bin", io.BytesIO(os.urandom(big - 500)), big)
    assert dest.head("short.bin") is None
    assert dest.head("short-big.bin") is None
    assert leftovers(destination_env, dest) == []


def test_a_stream_longer_than_announced_is_refused(destination_env: DestinationEnv) -> None:
    dest = destination_env.destination()
    with pytest.raises(SourceFileChanged):
        dest.put("long.bin", io.BytesIO(b"1234567890"), 5)
    assert dest.head("long.bin") is None


def test_a_repeated_put_is_harmless(destination_env: DestinationEnv) -> None:
    dest = destination_env.destination()
    for _ in range(2):
        dest.put("same.txt", io.BytesIO(b"same bytes"), 10, source_mtime_ns=MTIME)
    assert [o.key for o in dest.list()] == ["same.txt"]
    assert read_back(dest, "same.txt") == b"same bytes"


def test_list_filters_by_prefix_in_key_order(destination_env: DestinationEnv) -> None:
    dest = destination_env.destination()
    for key in ["b/2", "a/1", "b/1", "c"]:
        dest.put(key, io.BytesIO(b"x"), 1)
    assert [o.key for o in dest.list()] == ["a/1", "b/1", "b/2", "c"]
    assert [o.key for o in dest.list("b/")] == ["b/1", "b/2"]


def test_head_of_a_missing_object_is_none_and_delete_is_idempotent(
    destination_env: DestinationEnv,
) -> None:
    dest = destination_env.destination()
    assert dest.head("missing") is None
    dest.put("gone", io.BytesIO(b"x"), 1)
    dest.delete("gone")
    dest.delete("gone")
    assert dest.head("gone") is None


def test_an_interrupted_multipart_put_resumes_without_resending_parts(
    destination_env: DestinationEnv,
) -> None:
    if not destination_env.resumable:
        pytest.skip(f"{destination_env.backend} destination does not resume uploads")
    dest = destination_env.destination()
    part = destination_env.transfer.part_size
    data = os.urandom(destination_env.transfer.multipart_threshold * 3)
    with pytest.raises(ConnectionError):
        dest.put("resume.bin", FailingStream(data, part * 5 + 10), len(data), source_mtime_ns=MTIME)
    result = dest.put("resume.bin", io.BytesIO(data), len(data), source_mtime_ns=MTIME)
    assert result.resumed_bytes >= part * 3
    assert read_back(dest, "resume.bin") == data
    info = dest.head("resume.bin")
    assert info is not None and info.crc64 == crc64(data)
    assert leftovers(destination_env, dest) == []


def test_check_names_the_address_when_the_bucket_or_folder_is_missing(
    destination_env: DestinationEnv,
) -> None:
    if destination_env.backend == "local":
        dest = destination_env.destination(path=destination_env.address.path + "-missing")
    else:
        dest = destination_env.destination(bucket="no-such-bucket-here")
    with pytest.raises(AddressError) as info:
        dest.check()
    assert info.value.address == destination_env.address.name
    assert "does not exist" in str(info.value)


def test_a_wrong_secret_is_refused_without_showing_it(destination_env: DestinationEnv) -> None:
    if destination_env.backend == "local":
        pytest.skip("a local folder has no credentials")
    wrong = "Wr0ngSecretValue-do-not-print"
    dest = destination_env.destination(access_key_secret=wrong)
    with pytest.raises(AddressError) as info:
        dest.check()
    assert wrong not in str(info.value)
    assert wrong not in repr(dest)
    assert "AccessKeySecret" in str(info.value)


def test_existing_when_offered_agrees_with_head(destination_env: DestinationEnv) -> None:
    dest = destination_env.destination()
    present = ["a/1", "a/2 two", "a/sub/deep", "b/x", "top", "unicode/é"]
    for key in present:
        dest.put(key, io.BytesIO(b"x"), 1)
    asked = ["a/1", "a/3", "a/sub", "b/x", "c", "top", "unicode/é", "a/2 two", "a/0"]
    found = dest.existing(asked)
    if found is None:
        pytest.skip(f"{destination_env.backend} destination has nothing cheaper than head")
    assert found == {k for k in asked if dest.head(k) is not None}


def test_listed_when_offered_gives_the_size_and_etag_of_head_and_put(
    destination_env: DestinationEnv,
) -> None:
    dest = destination_env.destination()
    puts = {
        key: dest.put(key, io.BytesIO(key.encode()), len(key)) for key in ["l/a", "l/bb", "top2"]
    }
    listed = dest.listed(["l/a", "l/bb", "l/none", "top2", "nowhere/x"])
    if listed is None:
        pytest.skip(f"{destination_env.backend} destination has nothing cheaper than head")
    assert set(listed) == set(puts)
    for key, put in puts.items():
        head = dest.head(key)
        assert head is not None
        assert listed[key].size == head.size == len(key)
        assert put.etag is not None and listed[key].etag == head.etag == put.etag


def test_keys_are_relative_to_the_prefix_and_object_name_is_the_full_name(
    destination_env: DestinationEnv,
) -> None:
    dest = destination_env.destination()
    dest.put("a/b.txt", io.BytesIO(b"abc"), 3)
    assert dest.object_name("a/b.txt") == "pre/fix/a/b.txt"
    assert [o.key for o in dest.list()] == ["a/b.txt"]
    assert dest.display_url("a/b.txt").endswith("/pre/fix/a/b.txt")


def test_at_root_addresses_the_bucket_root_without_the_prefix(
    destination_env: DestinationEnv,
) -> None:
    dest = destination_env.destination()
    dest.put("a/b.txt", io.BytesIO(b"abc"), 3)
    with dest.at_root() as root:
        root.put("report/r.txt", io.BytesIO(b"r"), 1)
        assert read_back(root, "pre/fix/a/b.txt") == b"abc"
        assert root.object_name("report/r.txt") == "report/r.txt"
    assert dest.head("report/r.txt") is None
    assert read_back(destination_env.destination(prefix=""), "report/r.txt") == b"r"


def test_abandon_removes_an_interrupted_upload_and_its_checkpoint(
    destination_env: DestinationEnv,
) -> None:
    dest = destination_env.destination()
    data = os.urandom(destination_env.transfer.multipart_threshold * 3)
    with pytest.raises(Exception):  # noqa: B017 - whatever the source raised
        dest.put("given-up.bin", FailingStream(data, len(data) // 2), len(data))
    dest.abandon("given-up.bin")
    dest.abandon("given-up.bin")  # twice, or with nothing to abandon: harmless
    assert leftovers(destination_env, dest) == []
    assert list(dest.incomplete_uploads()) == []
    folder = destination_env.transfer.checkpoint_dir
    assert not folder or not os.path.isdir(folder) or os.listdir(folder) == []
    assert dest.head("given-up.bin") is None


def test_incomplete_uploads_are_listed_and_aborted(destination_env: DestinationEnv) -> None:
    if not destination_env.resumable:
        pytest.skip(f"{destination_env.backend} destination leaves no upload half-done")
    dest = destination_env.destination()
    data = os.urandom(destination_env.transfer.multipart_threshold * 3)
    with pytest.raises(ConnectionError):
        dest.put("orphan.bin", FailingStream(data, len(data) // 2), len(data))
    (upload,) = dest.incomplete_uploads()
    assert upload.key == "orphan.bin" and upload.initiated_ns
    dest.abort_upload(upload)
    dest.abort_upload(upload)  # already gone: not an error
    assert list(dest.incomplete_uploads()) == []
