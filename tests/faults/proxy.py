"""A fault-injecting HTTP proxy for the fault suite: sits between oss2 and ``sharelift ossd``.

    with FaultProxy(oss_server.port) as proxy:
        proxy.faults = Faults(status_rate=0.2)
        address = proxy.destination_address(oss_server, bucket="b")

Each request from the client is read whole (head and body), then, by the ``Faults`` in force:
answered with an error status without reaching the server; forwarded with one bit of its
body flipped; forwarded after a delay; forwarded and its answer dropped with a TCP reset (the
server did the work, the client never hears of it); or answered 403 if it is an object PUT;
or, for every part of a multipart upload, answered with ``part_status``. UploadPart requests
are counted in ``proxy.parts`` (how many parts a copy sent).
Answers may lose their ``x-oss-hash-crc64ecma`` header (a compatible endpoint or a proxy
that strips it). Every injected fault is counted in ``proxy.injected``.

Hand-written rather than a library (mitmproxy and the like are heavy and not installed):
OSS requests are plain HTTP/1.1 with Content-Length bodies, so a small relay suffices.
Only 127.0.0.1; one upstream connection per request.
"""

from __future__ import annotations

import collections
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

CRC_HEADER = b"x-oss-hash-crc64ecma"


@dataclass
class Faults:
    """What the proxy does to requests; rates are probabilities per request."""

    status_rate: float = 0.0  # answered at once with one of ``statuses``, empty body
    statuses: tuple[int, ...] = (500, 503)
    reset_rate: float = 0.0  # forwarded, then the client's connection is reset
    delay_rate: float = 0.0
    delay: float = 0.0
    flip_rate: float = 0.0  # one bit of a PUT body flipped on the way to the server
    strip_crc: bool = False  # the CRC-64 header removed from every answer
    forbid_put_rate: float = 0.0  # object PUTs answered 403 AccessDenied
    part_status: int = 0  # when set, every UploadPart answered with it (403: AccessDenied)
    reset_initiates: int = 0  # this many InitiateMultipartUpload forwarded, then reset
    seed: int = 13


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Conn:
    """Buffered reads of HTTP/1.1 messages from one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _more(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def head(self) -> bytes | None:
        while b"\r\n\r\n" not in self.buf:
            if not self._more():
                return None
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._more():
                raise ConnectionError("peer closed mid-body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def chunked(self) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                if not self._more():
                    raise ConnectionError("peer closed mid-chunk")
            line, _, self.buf = self.buf.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            data = self.exact(size + 2)[:size]
            body += data
            if size == 0:
                return body

    def rest(self) -> bytes:
        while self._more():
            pass
        out, self.buf = self.buf, b""
        return out


def _headers(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    first, *lines = head.split(b"\r\n")
    pairs = []
    for line in lines:
        name, _, value = line.partition(b":")
        pairs.append((name.strip(), value.strip()))
    return first, pairs


def _get(pairs: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for k, v in pairs:
        if k.lower() == name:
            return v
    return None


def _build(first: bytes, pairs: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [first] + [k + b": " + v for k, v in pairs]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _read_body(conn: _Conn, pairs: list[tuple[bytes, bytes]]) -> bytes:
    if (_get(pairs, b"transfer-encoding") or b"").lower() == b"chunked":
        return conn.chunked()
    return conn.exact(int(_get(pairs, b"content-length") or 0))


_FORBIDDEN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>The bucket policy does not allow you to write here.</Message>"
    b"<RequestId>FAULTPROXY</RequestId></Error>"
)


class FaultProxy:
    def __init__(self, upstream_port: int, faults: Faults | None = None) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.faults = faults or Faults()
        self.injected: collections.Counter[str] = collections.Counter()
        self.requests = 0
        self.parts = 0  # UploadPart requests received (whatever became of them)
        self.initiates_reset = 0
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def destination_address(self, oss_server: Any, **kwargs: Any) -> Any:
        """``oss_server``'s address, with the proxy as endpoint."""
        import dataclasses

        address = oss_server.destination_address(**kwargs)
        return dataclasses.replace(address, endpoint=self.endpoint)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------------

    def _chance(self, rate: float) -> bool:
        with self._lock:
            return rate > 0 and self._rng.random() < rate

    def _count(self, what: str) -> None:
        with self._lock:
            self.injected[what] += 1

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        conn = _Conn(client)
        try:
            while True:
                head = conn.head()
                if head is None:
                    break
                first, pairs = _headers(head)
                body = _read_body(conn, pairs)
                if not self._one(client, first, pairs, body):
                    return  # reset: the socket is gone
        except (OSError, ConnectionError, ValueError):
            pass
        try:
            client.close()
        except OSError:
            pass

    def _one(
        self, client: socket.socket, first: bytes, pairs: list[tuple[bytes, bytes]], body: bytes
    ) -> bool:
        """Handle one request; False when the client connection was reset."""
        with self._lock:
            self.requests += 1
        f = self.faults
        method, target = first.split(b" ")[:2]
        is_object_put = method == b"PUT" and target.count(b"/") >= 2 and b"?" not in target
        is_part = method == b"PUT" and b"partNumber=" in target and b"uploadId=" in target
        if is_part:
            with self._lock:
                self.parts += 1
        if f.delay_rate and self._chance(f.delay_rate):
            self._count("delay")
            time.sleep(f.delay)
        if self._chance(f.status_rate):
            with self._lock:
                status = self._rng.choice(f.statuses)
            self._count(f"status {status}")
            reason = {429: b"Too Many Requests", 500: b"Internal Server Error"}.get(
                status, b"Service Unavailable"
            )
            client.sendall(
                b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
                % (status, reason)
            )
            return True
        if is_part and f.part_status:
            self._count(f"{f.part_status} on UploadPart")
            body = _FORBIDDEN if f.part_status == 403 else b""
            kind = b"application/xml" if body else b"text/plain"
            client.sendall(
                b"HTTP/1.1 %d Refused\r\nContent-Type: %s\r\n"
                b"x-oss-request-id: FAULTPROXY\r\nContent-Length: %d\r\n\r\n%s"
                % (f.part_status, kind, len(body), body)
            )
            return True
        if is_object_put and self._chance(f.forbid_put_rate):
            self._count("403 on PUT")
            client.sendall(
                b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\n"
                b"x-oss-request-id: FAULTPROXY\r\nContent-Length: %d\r\n\r\n%s"
                % (len(_FORBIDDEN), _FORBIDDEN)
            )
            return True
        if method == b"PUT" and body and self._chance(f.flip_rate):
            self._count("flipped bit")
            with self._lock:
                i = self._rng.randrange(len(body))
            body = body[:i] + bytes([body[i] ^ 0x10]) + body[i + 1 :]
        reset = self._chance(f.reset_rate)
        if method == b"POST" and b"?uploads" in target:
            with self._lock:
                if self.initiates_reset < f.reset_initiates:
                    self.initiates_reset += 1
                    reset = True
        answer = self._forward(first, pairs, body, head_request=method == b"HEAD")
        if reset:
            self._count("reset")
            _reset(client)
            return False
        client.sendall(answer)
        return True

    def _forward(
        self, first: bytes, pairs: list[tuple[bytes, bytes]], body: bytes, *, head_request: bool
    ) -> bytes:
        out = [
            (k, v)
            for k, v in pairs
            if k.lower() not in (b"connection", b"transfer-encoding", b"content-length")
        ]
        out += [(b"Connection", b"close"), (b"Content-Length", str(len(body)).encode())]
        try:
            up = socket.create_connection(self.upstream, timeout=60)
        except OSError:
            self._count("upstream down")
            # What a load balancer says when its backend is gone.
            return b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
        with up:
            up.sendall(_build(first, out, body))
            uconn = _Conn(up)
            head = uconn.head()
            if head is None:
                return b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
            status_line, rpairs = _headers(head)
            status = int(status_line.split(b" ")[1])
            if head_request or status in (204, 304):
                rbody = b""
            elif _get(rpairs, b"content-length") is not None or (
                (_get(rpairs, b"transfer-encoding") or b"").lower() == b"chunked"
            ):
                rbody = _read_body(uconn, rpairs)
            else:
                rbody = uconn.rest()
        rout = [
            (k, v)
            for k, v in rpairs
            if k.lower() not in (b"connection", b"transfer-encoding")
            and not (head_request is False and k.lower() == b"content-length")
        ]
        if self.faults.strip_crc and any(k.lower() == CRC_HEADER for k, _ in rout):
            self._count("crc header stripped")
            rout = [(k, v) for k, v in rout if k.lower() != CRC_HEADER]
        if not head_request:
            rout.append((b"Content-Length", str(len(rbody)).encode()))
        rout.append((b"Connection", b"keep-alive"))
        return _build(status_line, rout, rbody)
