"""What a crash-safe object store must guarantee: no partial objects, ever."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import quote

import oss2
import pytest
from oss2.http import Request

from sharelift.checksum import crc64
from sharelift.local.ossd import OssServer

pytestmark = pytest.mark.servers


def signed_headers(
    ossd: OssServer, method: str, bucket: str, key: str, extra: dict[str, str]
) -> dict[str, str]:
    req = Request(
        method,
        f"{ossd.endpoint}/{bucket}/{quote(key, safe='')}",
        headers=extra,
        region=ossd.region,
        product="oss",
    )
    ossd.auth("v4")._sign_request(req, bucket, key)
    return {k: v for k, v in req.headers.items() if v is not None}


def send_truncated_put(ossd: OssServer, bucket: str, key: str, announced: int, sent: int) -> None:
    """A PUT that promises ``announced`` bytes, sends ``sent`` and hangs up."""
    headers = signed_headers(ossd, "PUT", bucket, key, {"Content-Length": str(announced)})
    head = f"PUT /{bucket}/{quote(key, safe='')} HTTP/1.1\r\nHost: {ossd.host}:{ossd.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection((ossd.host, ossd.port)) as s:
        s.sendall(head.encode() + b"p" * sent)
        time.sleep(0.05)


def wait_for_empty_tmp(ossd: OssServer, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = os.listdir(ossd.data_dir / "tmp")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def test_aborted_put_leaves_nothing_visible(ossd: OssServer, bucket_name: str) -> None:
    send_truncated_put(ossd, bucket_name, "aborted.bin", announced=5_000_000, sent=100_000)
    assert wait_for_empty_tmp(ossd) == []
    bucket = ossd.bucket(bucket_name)
    assert not bucket.object_exists("aborted.bin")
    assert [o.key for o in oss2.ObjectIterator(bucket)] == []


def test_aborted_put_does_not_replace_existing_object(ossd: OssServer, bucket_name: str) -> None:
    bucket = ossd.bucket(bucket_name)
    bucket.put_object("keep.bin", b"original")
    send_truncated_put(ossd, bucket_name, "keep.bin", announced=1_000_000, sent=500_000)
    assert wait_for_empty_tmp(ossd) == []
    assert bucket.get_object("keep.bin").read() == b"original"
    assert bucket.head_object("keep.bin").content_length == len(b"original")


def test_concurrent_puts_of_one_key_last_complete_wins(ossd: OssServer, bucket_name: str) -> None:
    bodies = [bytes([i]) * 300_000 for i in range(6)]
    errors: list[BaseException] = []

    def put(body: bytes) -> None:
        try:
            ossd.bucket(bucket_name).put_object("race.bin", body)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=put, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    got = ossd.bucket(bucket_name).get_object("race.bin")
    data = got.read()
    assert data in bodies
    assert got.etag == hashlib.md5(data).hexdigest().upper()
    assert got.server_crc == crc64(data)


def test_listing_while_putting_never_shows_partial_objects(
    ossd: OssServer, bucket_name: str
) -> None:
    size = 400_000
    done = threading.Event()
    bad: list[str] = []

    def writer() -> None:
        bucket = ossd.bucket(bucket_name)
        for i in range(15):
            bucket.put_object(f"w/{i:03d}", os.urandom(size))
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    reader = ossd.bucket(bucket_name)
    while not done.is_set():
        for obj in oss2.ObjectIterator(reader, prefix="w/"):
            if obj.size != size:
                bad.append(f"{obj.key}: {obj.size}")
    t.join()
    assert bad == []
    assert len(list(oss2.ObjectIterator(reader, prefix="w/"))) == 15


def test_chunked_request_body_is_stored_whole(ossd: OssServer, bucket_name: str) -> None:
    bucket = ossd.bucket(bucket_name, enable_crc=True)
    chunks = [os.urandom(70_000) for _ in range(5)]
    bucket.put_object("chunked.bin", iter(chunks))  # no length: requests sends chunked
    assert bucket.get_object("chunked.bin").read() == b"".join(chunks)


def test_objects_and_uploads_survive_a_restart(tmp_path: Path) -> None:
    with OssServer(tmp_path / "data") as server:
        bucket = server.create_bucket("restart")
        bucket.put_object("a/b", b"ab")
        bucket.put_object("a", b"a")
        upload_id = bucket.init_multipart_upload("mp").upload_id
        part = bucket.upload_part("mp", upload_id, 1, b"part")
        secret = server.access_key_secret.reveal()
    with OssServer(tmp_path / "data", access_key_secret=secret) as server:
        bucket = server.bucket("restart")
        assert [o.key for o in oss2.ObjectIterator(bucket)] == ["a", "a/b"]
        assert bucket.get_object("a/b").read() == b"ab"
        assert [u.upload_id for u in oss2.MultipartUploadIterator(bucket)] == [upload_id]
        bucket.complete_multipart_upload("mp", upload_id, [oss2.models.PartInfo(1, part.etag)])
        assert bucket.get_object("mp").read() == b"part"


def test_raw_utf8_request_line_addresses_the_same_key(ossd: OssServer, bucket_name: str) -> None:
    ossd.bucket(bucket_name).put_object("ü/ß.txt", b"raw")
    query = ossd.bucket(bucket_name, "v1").sign_url("GET", "ü/ß.txt", 60).split("?", 1)[1]
    with socket.create_connection((ossd.host, ossd.port)) as s:
        s.sendall(
            f"GET /{bucket_name}/ü/ß.txt?{query} HTTP/1.1\r\nHost: {ossd.host}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\nraw")
