"""Request framing and header limits, as OSS enforces them: a body whose end two parsers
could place differently is refused at once (and the connection closed), and user metadata
is at most 8 KB. Raw sockets, because the SDKs never send such requests."""

from __future__ import annotations

import re
import socket
from urllib.parse import quote

import oss2
import pytest

from sharelift.local.ossd import OssServer

from .test_ossd_durability import signed_headers

pytestmark = pytest.mark.servers

# Long enough for any answer here; a server that waits for more bytes (its 120 s idle
# timeout) makes the test fail on this, not hang.
ANSWER_TIMEOUT = 10.0


def exchange(ossd: OssServer, request: bytes) -> tuple[bytes, bool]:
    """Send ``request`` and read until the server closes or stays silent:
    (everything received, whether the server closed the connection)."""
    with socket.create_connection((ossd.host, ossd.port), timeout=ANSWER_TIMEOUT) as s:
        s.sendall(request)
        received = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return received, False
            if not chunk:
                return received, True
            received += chunk
            if _complete(received):
                try:
                    s.settimeout(1.0)
                    closed = s.recv(1) == b""
                except TimeoutError:
                    closed = False
                return received, closed


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return m is not None and len(body) >= int(m.group(1))


def put_head(ossd: OssServer, bucket: str, key: str, headers: list[tuple[str, str]]) -> bytes:
    """A signed PUT request head with ``headers`` added as given (repeats included)."""
    oss_headers = {k: v for k, v in headers if k.lower().startswith("x-oss-")}
    signed = signed_headers(ossd, "PUT", bucket, key, oss_headers)
    given = {k.lower() for k, _ in headers} | {"content-length"}
    lines = [f"PUT /{bucket}/{quote(key, safe='')} HTTP/1.1", f"Host: {ossd.host}:{ossd.port}"]
    lines += [f"{k}: {v}" for k, v in signed.items() if k.lower() not in given]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_and_code(answer: bytes) -> tuple[int, str]:
    status = int(answer.split(b" ", 2)[1])
    m = re.search(rb"<Code>([^<]+)</Code>", answer)
    return status, m.group(1).decode() if m else ""


def exists(ossd: OssServer, bucket: str, key: str) -> bool:
    return bool(ossd.bucket(bucket).object_exists(key))


def test_two_different_content_lengths_are_refused_and_the_connection_closed(
    ossd: OssServer, bucket_name: str
) -> None:
    smuggled = b"GET /" + bucket_name.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    request = put_head(
        ossd, bucket_name, "cl.txt", [("Content-Length", "5"), ("Content-Length", "50")]
    )
    answer, closed = exchange(ossd, request + b"hello" + smuggled)
    assert status_and_code(answer) == (400, "InvalidRequest")
    assert answer.count(b"HTTP/1.1 ") == 1, "the rest was parsed as a next request"
    assert closed
    assert not exists(ossd, bucket_name, "cl.txt")


def test_the_same_content_length_twice_is_refused_too(ossd: OssServer, bucket_name: str) -> None:
    request = put_head(
        ossd, bucket_name, "cl2.txt", [("Content-Length", "5"), ("Content-Length", "5")]
    )
    answer, closed = exchange(ossd, request + b"hello")
    assert status_and_code(answer) == (400, "InvalidRequest")
    assert closed
    assert not exists(ossd, bucket_name, "cl2.txt")


def test_content_length_with_chunked_transfer_encoding_is_refused(
    ossd: OssServer, bucket_name: str
) -> None:
    request = put_head(
        ossd,
        bucket_name,
        "te.txt",
        [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
    )
    answer, closed = exchange(ossd, request + b"5\r\nhello\r\n0\r\n\r\n")
    assert status_and_code(answer) == (400, "InvalidRequest")
    assert closed
    assert not exists(ossd, bucket_name, "te.txt")


@pytest.mark.parametrize("coding", ["gzip, chunked", "chunked, identity", "identity"])
def test_a_transfer_coding_other_than_chunked_alone_is_refused(
    ossd: OssServer, bucket_name: str, coding: str
) -> None:
    request = put_head(ossd, bucket_name, "tc.txt", [("Transfer-Encoding", coding)])
    answer, closed = exchange(ossd, request + b"5\r\nhello\r\n0\r\n\r\n")
    assert status_and_code(answer) == (501, "NotImplemented")
    assert closed


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nhello", b"0x5\r\nhello\r\n0\r\n\r\n", b"+5\r\nhello", b"5\r\nhelloEXTRA\r\n"],
    ids=["not-hex", "0x-prefix", "plus-sign", "data-longer-than-size"],
)
def test_a_malformed_chunk_is_answered_at_once_with_400(
    ossd: OssServer, bucket_name: str, body: bytes
) -> None:
    """No terminating chunk follows: a server that kept reading would wait for its idle
    timeout (120 s) before answering."""
    request = put_head(ossd, bucket_name, "chunk.txt", [("Transfer-Encoding", "chunked")])
    answer, closed = exchange(ossd, request + body)
    assert status_and_code(answer) == (400, "InvalidRequest")
    assert closed
    assert not exists(ossd, bucket_name, "chunk.txt")


def test_a_well_formed_chunked_put_still_stores_the_object_on_a_kept_connection(
    ossd: OssServer, bucket_name: str
) -> None:
    request = put_head(ossd, bucket_name, "ok.txt", [("Transfer-Encoding", "chunked")])
    answer, closed = exchange(ossd, request + b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert status_and_code(answer)[0] == 200
    assert not closed, "a well-formed chunked request keeps the connection alive"
    assert ossd.bucket(bucket_name).get_object("ok.txt").read() == b"hello world"


def test_user_metadata_over_8_kb_is_refused_as_oss_does(ossd: OssServer, bucket_name: str) -> None:
    bucket = ossd.bucket(bucket_name)
    at_limit = {"x-oss-meta-a": "v" * (8 * 1024 - len("x-oss-meta-a"))}
    bucket.put_object("at-limit.txt", b"x", headers=at_limit)
    assert bucket.head_object("at-limit.txt").headers["x-oss-meta-a"] == at_limit["x-oss-meta-a"]

    over = {"x-oss-meta-a": "v" * (8 * 1024 - len("x-oss-meta-a") + 1)}
    with pytest.raises(oss2.exceptions.OssError) as info:
        bucket.put_object("over.txt", b"x", headers=over)
    assert (info.value.status, info.value.code) == (400, "InvalidArgument")
    assert info.value.ec == "0011-00000002"
    assert not bucket.object_exists("over.txt")


def test_160_kb_of_user_metadata_in_raw_headers_is_refused(
    ossd: OssServer, bucket_name: str
) -> None:
    meta = [(f"x-oss-meta-big{i}", "m" * 55_000) for i in range(3)]
    request = put_head(ossd, bucket_name, "meta.txt", [*meta, ("Content-Length", "5")])
    answer, _ = exchange(ossd, request + b"hello")
    assert status_and_code(answer) == (400, "InvalidArgument")
    assert b"0011-00000002" in answer
    assert not exists(ossd, bucket_name, "meta.txt")


def test_user_metadata_over_8_kb_is_refused_for_a_multipart_upload_too(
    ossd: OssServer, bucket_name: str
) -> None:
    bucket = ossd.bucket(bucket_name)
    with pytest.raises(oss2.exceptions.OssError) as info:
        bucket.init_multipart_upload("mp.bin", headers={"x-oss-meta-a": "v" * 9000})
    assert (info.value.status, info.value.code) == (400, "InvalidArgument")
    assert list(oss2.MultipartUploadIterator(bucket)) == []
