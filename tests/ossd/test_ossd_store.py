"""The disk store and the request helpers, without HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sharelift.ossd.auth import Authenticator, SignedRequest
from sharelift.ossd.errors import OssError
from sharelift.ossd.server import decode_token, encode_token, parse_range
from sharelift.ossd.store import Bucket, ObjectMeta, Store


def put(store: Store, bucket: Bucket, key: str, data: bytes = b"x") -> ObjectMeta:
    temp = store.new_temp()
    temp.write(data)
    meta = ObjectMeta(key, temp.size, temp.md5_digest.hex().upper(), temp.crc, time.time(), "a/b")
    store.commit_object(bucket, temp, meta)
    return meta


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Store(tmp_path / "data", fsync=False)
    s.open()
    yield s
    s.close()


def test_listing_10k_objects_takes_well_under_a_second(store: Store) -> None:
    store.create_bucket("many")
    bucket = store.get_bucket("many")
    # the listing only reads the in-memory index: fill it directly (writing 10k files is slow
    # here and is covered by the tests that go through commit_object)
    for i in range(10_000):
        key = f"dir{i % 10}/file{i:05d}"
        bucket.objects[key] = ObjectMeta(key, 1, "E", 0, time.time(), "a/b")
    bucket.keys = sorted(bucket.objects)
    started = time.perf_counter()
    seen, after = 0, ""
    while True:
        contents, _, truncated, last = store.list_objects(bucket, after=after, max_keys=1000)
        seen += len(contents)
        if not truncated:
            break
        after = last
    assert seen == 10_000
    assert time.perf_counter() - started < 0.5
    started = time.perf_counter()
    _, prefixes, _, _ = store.list_objects(bucket, delimiter="/", max_keys=1000)
    assert prefixes == [f"dir{i}/" for i in range(10)]
    assert time.perf_counter() - started < 0.05  # a bisect per common prefix, no scan


def test_reopened_store_rebuilds_the_index_from_the_files(store: Store, tmp_path: Path) -> None:
    store.create_bucket("reopen")
    bucket = store.get_bucket("reopen")
    keys = [f"k/{i:04d}" for i in range(300)] + ["k", "k/"]
    for key in keys:
        put(store, bucket, key, key.encode())
    store.delete_object(bucket, "k/0000")
    store.close()
    reopened = Store(tmp_path / "data", fsync=False)
    reopened.open()
    again = reopened.get_bucket("reopen")
    assert again.keys == sorted(set(keys) - {"k/0000"})
    obj = reopened.open_object(again, "k/0299")
    try:
        assert obj.meta.size == len(b"k/0299")
    finally:
        obj.close()
    reopened.close()


def test_marker_on_a_common_prefix_skips_that_prefix(store: Store) -> None:
    store.create_bucket("b-1")
    bucket = store.get_bucket("b-1")
    for key in ("a", "a/1", "a/2", "b/1", "c"):
        put(store, bucket, key)
    contents, prefixes, truncated, last = store.list_objects(bucket, delimiter="/", max_keys=2)
    assert [m.key for m in contents] == ["a"] and prefixes == ["a/"] and truncated
    contents, prefixes, truncated, _ = store.list_objects(bucket, delimiter="/", after=last)
    assert [m.key for m in contents] == ["c"] and prefixes == ["b/"] and not truncated


def test_second_store_on_the_same_directory_is_refused(store: Store) -> None:
    other = Store(store.root)
    with pytest.raises(RuntimeError, match="in use"):
        other.open()


def test_parse_range_follows_oss_defaults_and_standard_mode() -> None:
    assert parse_range("bytes=0-9", 100, False) == (0, 9)
    assert parse_range("bytes=90-", 100, False) == (90, 99)
    assert parse_range("bytes=-10", 100, False) == (90, 99)
    assert parse_range("bytes=0-100", 100, False) is None
    assert parse_range("bytes=100-", 100, False) is None
    assert parse_range("bytes=0-100", 100, True) == (0, 99)
    assert parse_range("bytes=0-9,20-29", 100, False) == (0, 9)
    assert parse_range("items=0-9", 100, False) is None
    with pytest.raises(OssError) as e:
        parse_range("bytes=100-", 100, True)
    assert e.value.status == 416


def test_continuation_token_round_trips_any_key() -> None:
    for key in ("a", "ü/中 +%?#", "x" * 1023):
        token = encode_token(key)
        assert token.isascii() and "%" not in token and "+" not in token
        assert decode_token(token) == key


def test_authenticator_never_shows_the_secret() -> None:
    auth = Authenticator("id", "top-secret", "cn-hangzhou")
    assert "top-secret" not in repr(auth)
    req = SignedRequest(
        "GET",
        "b",
        "k",
        [],
        [
            ("authorization", "OSS id:bad"),
            ("date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())),
        ],
    )
    with pytest.raises(OssError) as e:
        auth.verify(req)
    assert e.value.code == "SignatureDoesNotMatch"
    assert "top-secret" not in str(e.value) + str(e.value.extra)
