"""The HTTP side of ``sharelift ossd``: OSS's REST API over the disk store.

stdlib ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive: one thread per client
connection, which is what the SDKs open (a pool of keep-alive connections). Bodies stream in
1 MiB chunks straight into a temp file while MD5 and CRC-64 are summed; GET bodies go out
with ``sendfile``. Responses are written in one ``send`` (headers and small bodies
together) on a TCP_NODELAY socket, so small requests do not stall on delayed ACKs.

Addressing: path style (``/bucket/key``) or virtual-hosted (``Host: bucket.<domain>``,
where ``<domain>`` is one of the configured endpoint names, ``localhost`` by default).
Absolute-form request targets (``GET http://bucket.oss.localhost:N/key``, what an HTTP
client sends to a proxy) are accepted too, which lets tests use virtual-hosted names
without DNS.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import ipaddress
import itertools
import logging
import mimetypes
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, unquote_plus, urlsplit

from sharelift.ossd import xml as X
from sharelift.ossd.auth import Authenticator, SignedRequest
from sharelift.ossd.errors import NotModified, OssError
from sharelift.ossd.store import (
    MAX_OBJECT_SIZE,
    MAX_PART_NUMBER,
    Bucket,
    ObjectMeta,
    OpenObject,
    PartMeta,
    Store,
    TempFile,
    Upload,
    WriteAttrs,
    validate_key,
)

logger = logging.getLogger("sharelift.ossd")

CHUNK = 1024 * 1024
STORED_HEADERS = (
    "Cache-Control",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Expires",
)
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
STORAGE_CLASSES = {"Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive"}
BUCKET_ACLS = {"private", "public-read", "public-read-write"}
OBJECT_ACLS = BUCKET_ACLS | {"default"}
# sub-resources of features ossd does not have: answered with NotImplemented, never ignored
UNSUPPORTED = frozenset(
    [
        "append",
        "position",
        "symlink",
        "tagging",
        "restore",
        "x-oss-process",
        "x-oss-async-process",
        "callback",
        "lifecycle",
        "cors",
        "website",
        "referer",
        "logging",
        "policy",
        "encryption",
        "inventory",
        "worm",
        "replication",
        "versions",
        "cname",
        "style",
        "metaQuery",
        "qos",
        "qosInfo",
        "transferAcceleration",
        "requestPayment",
        "asyncFetch",
        "live",
        "vod",
        "comp",
        "objectInfo",
        "resourceGroup",
        "accessPoint",
        "publicAccessBlock",
        "httpsConfig",
    ]
)
# endpoint names under which "<bucket>.<name>" is a virtual-hosted request
DEFAULT_DOMAINS = ("localhost", "oss.localhost", "127.0.0.1")
_CHUNK_SIZE_RE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_CONTENT_LENGTH_RE = re.compile(r"[0-9]{1,19}")
MAX_CHUNK_LINE = 4096
# OSS: the names and values of all x-oss-meta-* headers of a request, at most 8 KB
MAX_USER_META_BYTES = 8 * 1024
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*(?:,.*)?$")


class ClientGone(Exception):
    """The client closed the connection or stopped sending (body shorter than announced)."""


def _bad_framing(message: str) -> OssError:
    """A body whose length cannot be known for sure: answered at once with 400, and the
    connection closed (whatever follows cannot be told apart from a next request)."""
    return OssError("InvalidRequest", message)


# --------------------------------------------------------------------------------------
# request bodies


class Body:
    """A request body, Content-Length or chunked, read in place into caller buffers."""

    def __init__(self, rfile, length: int | None, chunked: bool) -> None:  # type: ignore[no-untyped-def]
        self.rfile = rfile
        self.length = length  # None when chunked
        self.chunked = chunked
        self._left = length or 0
        self._chunk_left = 0
        self.done = not chunked and not length
        self.consumed = 0
        self.broken = False  # malformed chunk: nothing more is read from the connection

    def _readinto(self, mv: memoryview) -> int:
        try:
            n = self.rfile.readinto(mv)
        except (OSError, ValueError) as e:  # timeout, reset
            raise ClientGone(str(e)) from None
        if n is None or n < len(mv):
            raise ClientGone("request body ended early")
        return n

    def _readline(self) -> bytes:
        try:
            line = self.rfile.readline(MAX_CHUNK_LINE)
        except (OSError, ValueError) as e:
            raise ClientGone(str(e)) from None
        if not line.endswith(b"\n"):
            if len(line) >= MAX_CHUNK_LINE:
                raise self._malformed("Chunk size line too long.")
            raise ClientGone("chunked body ended early")
        return line

    def _malformed(self, message: str) -> OssError:
        self.broken = self.done = True
        return _bad_framing(message)

    def readinto(self, mv: memoryview) -> int:
        """Fill ``mv`` (fully unless the body ends); 0 at the end of the body."""
        if self.done:
            return 0
        if not self.chunked:
            want = min(len(mv), self._left)
            n = self._readinto(mv[:want])
            self._left -= n
            self.consumed += n
            self.done = self._left == 0
            return n
        if self._chunk_left == 0:
            line = self._readline()
            # 1*HEXDIG, then optional extensions (RFC 9112 7.1); int(x, 16) alone would also
            # take '0x1a', '+1a', '1_a' and spaces, which other parsers read differently.
            digits = line.split(b";", 1)[0].rstrip(b"\r\n").rstrip(b" \t")
            if not _CHUNK_SIZE_RE.fullmatch(digits):
                raise self._malformed("Bad chunked transfer encoding: invalid chunk size.")
            size = int(digits, 16)
            if size == 0:
                while self._readline() not in (b"\r\n", b"\n"):
                    pass
                self.done = True
                return 0
            self._chunk_left = size
        want = min(len(mv), self._chunk_left)
        n = self._readinto(mv[:want])
        self._chunk_left -= n
        self.consumed += n
        if self._chunk_left == 0 and self._readline() not in (b"\r\n", b"\n"):
            raise self._malformed("Bad chunked transfer encoding: chunk data longer than its size.")
        return n

    def read_all(self, limit: int) -> bytes:
        if self.length is not None and self.length > limit:
            raise OssError("InvalidArgument", "The request body is too large.")
        out = bytearray()
        buf = memoryview(bytearray(64 * 1024))
        while True:
            n = self.readinto(buf)
            if not n:
                return bytes(out)
            out += buf[:n]
            if len(out) > limit:
                raise OssError("InvalidArgument", "The request body is too large.")

    def drain(self) -> None:
        buf = memoryview(bytearray(256 * 1024))
        while self.readinto(buf):
            pass


# --------------------------------------------------------------------------------------
# request / response


@dataclass
class Ctx:
    method: str
    host: str  # Host header value, for HostId / endpoints
    bucket: str | None
    key: str | None
    pairs: list[tuple[str, str]]
    q: dict[str, str]
    headers: object  # email.message.Message
    body: Body
    request_id: str

    def header(self, name: str) -> str:
        return self.headers.get(name, "") or ""  # type: ignore[attr-defined]


@dataclass
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    file: OpenObject | None = None
    offset: int = 0
    length: int = 0
    head_length: int | None = None  # Content-Length of a HEAD answer


def _xml(body: bytes, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("Content-Type", "application/xml"), *(headers or [])], body)


def _int_param(q: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise OssError(
            "InvalidArgument", f"{name} must be an integer.", ArgumentName=name, ArgumentValue=raw
        ) from None
    if not lo <= value <= hi:
        raise OssError(
            "InvalidArgument",
            f"{name} must be between {lo} and {hi}.",
            ArgumentName=name,
            ArgumentValue=raw,
        )
    return value


def _url_encoding(q: dict[str, str]) -> bool:
    enc = q.get("encoding-type")
    if enc is None or enc == "":
        return False
    if enc != "url":
        raise OssError(
            "InvalidArgument",
            "The encoding-type must be url.",
            ArgumentName="encoding-type",
            ArgumentValue=enc,
        )
    return True


def encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise OssError(
            "InvalidArgument",
            "The continuation token provided is incorrect.",
            ArgumentName="continuation-token",
            ArgumentValue=token,
        ) from None


def parse_range(header: str, size: int, standard: bool) -> tuple[int, int] | None:
    """(first, last) byte to send, or None for "the whole object, 200" (OSS's default for a
    malformed or out-of-range Range). With ``x-oss-range-behavior: standard`` an end past the
    object is clipped and a start past it is 416 InvalidRange."""
    m = _RANGE_RE.match(header)
    if not m:
        return None
    s, e = m.group(1), m.group(2)
    if s == "" and e == "":
        return None
    if s == "":
        n = int(e)
        if n == 0:
            if standard:
                raise OssError("InvalidRange", ActualObjectSize=str(size), RangeRequested=header)
            return None
        if n > size:
            return (0, size - 1) if standard and size else None
        return size - n, size - 1
    start = int(s)
    end = int(e) if e else size - 1
    if e and end < start:
        return None
    if start >= size:
        if standard:
            raise OssError("InvalidRange", ActualObjectSize=str(size), RangeRequested=header)
        return None
    if end >= size:
        if not standard:
            return None
        end = size - 1
    return start, end


def _http_time(value: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _etag_list(value: str) -> list[str]:
    return [v.strip().strip('"').upper() for v in value.split(",") if v.strip()]


def check_conditions(get: object, meta: ObjectMeta, prefix: str = "") -> None:
    """If-Match & co. (``prefix`` = 'x-oss-copy-source-' for CopyObject's copies)."""
    header = get  # callable name -> value
    etag = meta.etag.upper()
    mtime = int(meta.mtime)
    if_match = header(prefix + "if-match")  # type: ignore[operator]
    if if_match and "*" not in if_match and etag not in _etag_list(if_match):
        raise OssError("PreconditionFailed", Condition="If-Match")
    since = header(prefix + "if-unmodified-since")  # type: ignore[operator]
    if since and (t := _http_time(since)) is not None and mtime > t:
        raise OssError("PreconditionFailed", Condition="If-Unmodified-Since")
    none_match = header(prefix + "if-none-match")  # type: ignore[operator]
    if none_match and ("*" in none_match or etag in _etag_list(none_match)):
        if prefix:
            raise OssError("PreconditionFailed", Condition="If-None-Match")
        raise NotModified()
    modified = header(prefix + "if-modified-since")  # type: ignore[operator]
    if modified and (t := _http_time(modified)) is not None and mtime <= t:
        if prefix:
            raise OssError("PreconditionFailed", Condition="If-Modified-Since")
        raise NotModified()


def object_headers(meta: ObjectMeta, q: dict[str, str] | None = None) -> list[tuple[str, str]]:
    headers = [
        ("Content-Type", meta.content_type),
        ("ETag", X.quoted_etag(meta.etag)),
        ("Last-Modified", X.http_date(meta.mtime)),
        ("Accept-Ranges", "bytes"),
        ("x-oss-object-type", meta.object_type),
        ("x-oss-storage-class", meta.storage_class),
        ("x-oss-hash-crc64ecma", str(meta.crc64)),
    ]
    if meta.content_md5:
        headers.append(("Content-MD5", meta.content_md5))
    headers += list(meta.headers.items())
    headers += list(meta.user_meta.items())
    if q:
        for param, name in RESPONSE_OVERRIDES.items():
            if param in q:
                headers = [(k, v) for k, v in headers if k.lower() != name.lower()]
                headers.append((name, q[param]))
    return headers


# --------------------------------------------------------------------------------------
# server


class OssHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        store: Store,
        auth: Authenticator,
        domains: list[str] | None = None,
    ) -> None:
        self.store = store
        self.auth = auth
        self.domains = {d.lower().strip(".") for d in (domains or DEFAULT_DOMAINS)}
        self._ids = itertools.count(1)
        self._id_prefix = f"{int(time.time()) & 0xFFFFFFFF:08X}{os.getpid() & 0xFFFF:04X}"
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host name (getfqdn): skip it
        import socketserver

        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def next_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids) & 0xFFFFFFFFFFFF:012X}"

    def virtual_bucket(self, hostname: str) -> str | None:
        """The bucket named by a virtual-hosted Host (``bucket.<domain>``), else None."""
        h = hostname.lower().rstrip(".")
        if not h or h in self.domains:
            return None
        try:
            ipaddress.ip_address(h.strip("[]"))
            return None
        except ValueError:
            pass
        label, sep, rest = h.partition(".")
        if sep and rest in self.domains:
            return label
        return None


def _split_host(netloc: str) -> str:
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1]
    return netloc.rsplit(":", 1)[0] if ":" in netloc else netloc


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AliyunOSS"
    sys_version = ""
    rbufsize = 64 * 1024
    timeout = 120  # idle keep-alive connections and stalled bodies
    server: OssHttpServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf: memoryview | None = None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        logger.debug("%s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802
        self._serve()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_GET

    # ---- plumbing

    def _buffer(self) -> memoryview:
        """A 1 MiB receive buffer per connection, reused for every request on it."""
        if self._buf is None:
            self._buf = memoryview(bytearray(CHUNK))
        return self._buf

    def _parse_target(self) -> tuple[str, str | None, str | None, str]:
        raw = self.path
        if raw.startswith(("http://", "https://")):
            parts = urlsplit(raw)
            netloc, path, query = parts.netloc, parts.path or "/", parts.query
        else:
            path, _, query = raw.partition("?")
            netloc = self.headers.get("Host", "") or ""
        vbucket = self.server.virtual_bucket(_split_host(netloc))
        if vbucket is not None:
            bucket: str | None = vbucket
            keypart = path[1:] if path.startswith("/") else path
        else:
            rest = path[1:] if path.startswith("/") else path
            seg, _, keypart = rest.partition("/")
            bucket = unquote(seg) if seg else None
        key = None
        if keypart and bucket:
            if not keypart.isascii():  # raw UTF-8 in the request line (decoded as latin-1)
                keypart = keypart.encode("latin-1").decode("utf-8", "surrogateescape")
            key = unquote(keypart, errors="surrogateescape")
        return netloc, bucket, key, query

    @staticmethod
    def _parse_query(query: str) -> list[tuple[str, str]]:
        pairs = []
        for part in query.split("&"):
            if not part:
                continue
            k, _, v = part.partition("=")
            pairs.append((unquote_plus(k), unquote_plus(v)))
        return pairs

    def _make_body(self) -> Body:
        """The request body, framed as RFC 9112 section 6 says. Anything that lets two
        parsers disagree on where the body ends (and so where the next request starts) is
        refused, and the connection closed: two Content-Length headers, Content-Length
        with Transfer-Encoding, a transfer coding other than chunked alone."""
        te = self.headers.get_all("Transfer-Encoding") or []
        cl = self.headers.get_all("Content-Length") or []
        if te:
            if cl:
                self.close_connection = True
                raise _bad_framing("Content-Length and Transfer-Encoding must not both be sent.")
            if len(te) > 1 or te[0].strip().lower() != "chunked":
                self.close_connection = True
                raise OssError(
                    "NotImplemented", f"Transfer-Encoding {', '.join(te)!r} is not supported."
                )
            return Body(self.rfile, None, True)
        if not cl:
            return Body(self.rfile, 0, False)
        if len(cl) > 1 or not _CONTENT_LENGTH_RE.fullmatch(cl[0].strip()):
            self.close_connection = True
            if len(cl) > 1:
                raise _bad_framing("Content-Length must be sent once.")
            raise OssError("InvalidArgument", "Invalid Content-Length.")
        return Body(self.rfile, int(cl[0]), False)

    def _serve(self) -> None:
        started = time.perf_counter()
        rid = self.server.next_request_id()
        method = self.command
        host = self.headers.get("Host", "") or ""
        body: Body | None = None
        resp: Response
        try:
            host, bucket, key, query = self._parse_target()
            pairs = self._parse_query(query)
            q: dict[str, str] = {}
            for k, v in pairs:
                q.setdefault(k, v)
            body = self._make_body()
            ctx = Ctx(method, host, bucket, key, pairs, q, self.headers, body, rid)
            signed = SignedRequest(
                method,
                bucket,
                key,
                pairs,
                [(k.lower(), v) for k, v in self.headers.items()],
            )
            try:
                self.server.auth.verify(signed)
            except OssError as e:
                if e.code != "AccessDenied" or not self._anonymous_allowed(ctx):
                    raise
            resp = self._dispatch(ctx)
        except OssError as e:
            resp = self._error(e, rid, host)
        except NotModified:
            resp = Response(304)
        except ClientGone as e:
            logger.debug("%s %s: client gone (%s)", method, self.path, e)
            self.close_connection = True
            return
        except Exception:
            logger.exception("%s %s failed", method, self.path)
            resp = self._error(OssError("InternalError"), rid, host)
        if body is not None and body.broken:
            self.close_connection = True
        elif body is not None and not body.done:
            if body.length is not None and body.length - body.consumed > 64 * 1024 * 1024:
                self.close_connection = True  # not worth reading a huge unwanted body
            else:
                try:
                    body.drain()
                except (ClientGone, OssError):
                    self.close_connection = True
        try:
            self._send(resp, rid)
        finally:
            if resp.file is not None:
                resp.file.close()
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d (%s, %.1f ms)",
                method,
                self.path,
                resp.status,
                rid,
                (time.perf_counter() - started) * 1000,
            )

    def _anonymous_allowed(self, c: Ctx) -> bool:
        """Unsigned requests: reads of a public-read bucket, object writes of a
        public-read-write one (bucket ACL only; object ACLs are accepted, not enforced)."""
        if c.header("Authorization") or any(
            k in c.q for k in ("OSSAccessKeyId", "Signature", "x-oss-signature")
        ):
            return False  # signed, but wrongly: the error stands
        bucket = self.server.store.find_bucket(c.bucket or "")
        if bucket is None or bucket.acl == "private":
            return False
        if c.key is None:  # listing only, no bucket management
            plain = not ({"acl", "bucketInfo", "location", "stat", "uploads"} & set(c.q))
            return c.method == "GET" and plain
        if c.method in ("GET", "HEAD") and "acl" not in c.q:
            return True
        return bucket.acl == "public-read-write" and "acl" not in c.q

    def _error(self, err: OssError, rid: str, host: str) -> Response:
        document = X.error_document(err, rid, _split_host(host) or "localhost")
        headers = [("Content-Type", "application/xml")]
        if err.ec:
            headers.append(("x-oss-ec", err.ec))
        if self.command == "HEAD":
            headers.append(("x-oss-err", X.error_header(document)))
            return Response(err.status, headers, b"", head_length=0)
        if err.code == "InvalidRange" and "ActualObjectSize" in err.extra:
            headers.append(("Content-Range", f"bytes */{err.extra['ActualObjectSize']}"))
        return Response(err.status, headers, document)

    def _send(self, resp: Response, rid: str) -> None:
        reason = self.responses.get(resp.status, ("",))[0]
        is_head = self.command == "HEAD"
        if resp.file is not None:
            length = resp.length
        elif is_head and resp.head_length is not None:
            length = resp.head_length
        else:
            length = len(resp.body)
        lines = [
            f"HTTP/1.1 {resp.status} {reason}",
            "Server: AliyunOSS",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            f"Connection: {'close' if self.close_connection else 'keep-alive'}",
            f"x-oss-request-id: {rid}",
        ]
        if resp.status != 304:
            lines.append(f"Content-Length: {length}")
        for k, v in resp.headers:
            lines.append(f"{k}: {v}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        try:
            if is_head or resp.status == 304:
                self.wfile.write(head)
            elif resp.file is not None:
                self.wfile.write(head)
                if length:
                    self.connection.sendfile(resp.file.file, resp.offset, length)
            else:
                self.wfile.write(head + resp.body)
        except OSError as e:
            logger.debug("send failed: %s", e)
            self.close_connection = True

    # ---- dispatch

    def _dispatch(self, c: Ctx) -> Response:
        m = c.method
        if c.bucket is None:
            if m == "GET":
                return self._list_buckets(c)
            raise OssError("MethodNotAllowed", Method=m, ResourceType="Service")
        unsupported = UNSUPPORTED.intersection(c.q)
        if unsupported:
            raise OssError("NotImplemented", f"ossd does not implement ?{sorted(unsupported)[0]}")
        if c.key is None:
            if m == "PUT":
                return self._put_bucket_acl(c) if "acl" in c.q else self._create_bucket(c)
            if m == "GET":
                if "acl" in c.q:
                    b = self.server.store.get_bucket(c.bucket)
                    return _xml(X.access_control_policy(b.acl))
                if "bucketInfo" in c.q:
                    b = self.server.store.get_bucket(c.bucket)
                    return _xml(X.bucket_info(b, c.host))
                if "location" in c.q:
                    return _xml(X.bucket_location(self.server.store.get_bucket(c.bucket)))
                if "stat" in c.q:
                    return _xml(X.bucket_stat(*self.server.store.get_bucket(c.bucket).stats()))
                if "uploads" in c.q:
                    return self._list_uploads(c)
                if "versioning" in c.q:
                    self.server.store.get_bucket(c.bucket)
                    return _xml(X.versioning())
                if c.q.get("list-type") == "2":
                    return self._list_objects_v2(c)
                return self._list_objects_v1(c)
            if m == "HEAD":
                self.server.store.get_bucket(c.bucket)
                return Response(200)
            if m == "DELETE":
                self.server.store.delete_bucket(c.bucket)
                return Response(204)
            if m == "POST" and "delete" in c.q:
                return self._delete_multiple(c)
            raise OssError("MethodNotAllowed", Method=m, ResourceType="Bucket")
        if m == "PUT":
            if "uploadId" in c.q or "partNumber" in c.q:
                return self._upload_part(c)
            if "acl" in c.q:
                return self._put_object_acl(c)
            if c.header("x-oss-copy-source"):
                return self._copy_object(c)
            return self._put_object(c)
        if m == "GET":
            if "uploadId" in c.q:
                return self._list_parts(c)
            if "acl" in c.q:
                return self._get_object_acl(c)
            return self._get_object(c)
        if m == "HEAD":
            return self._head_object(c, meta_only="objectMeta" in c.q)
        if m == "DELETE":
            if "uploadId" in c.q:
                return self._abort_upload(c)
            return self._delete_object(c)
        if m == "POST":
            if "uploads" in c.q:
                return self._initiate_upload(c)
            if "uploadId" in c.q:
                return self._complete_upload(c)
        raise OssError("MethodNotAllowed", Method=m, ResourceType="Object")

    # ---- helpers

    def _bucket(self, c: Ctx) -> Bucket:
        assert c.bucket is not None
        return self.server.store.get_bucket(c.bucket)

    def _object(self, c: Ctx) -> tuple[Bucket, str]:
        b = self._bucket(c)
        assert c.key is not None
        validate_key(c.key)
        return b, c.key

    @staticmethod
    def _expected_md5(c: Ctx) -> bytes | None:
        value = c.header("Content-MD5").strip()
        if not value:
            return None
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise OssError("InvalidDigest", ContentMD5=value) from None
        if len(digest) != 16:
            raise OssError("InvalidDigest", ContentMD5=value)
        return digest

    @staticmethod
    def _attrs(c: Ctx, key: str) -> WriteAttrs:
        ctype = c.header("Content-Type")
        if not ctype:
            ctype = mimetypes.guess_type(key, strict=False)[0] or "application/octet-stream"
        storage_class = c.header("x-oss-storage-class") or "Standard"
        if storage_class not in STORAGE_CLASSES:
            raise OssError(
                "InvalidArgument",
                "Unsupported storage class.",
                ArgumentName="x-oss-storage-class",
                ArgumentValue=storage_class,
            )
        acl = c.header("x-oss-object-acl")
        if acl and acl not in OBJECT_ACLS:
            raise OssError(
                "InvalidArgument",
                "no such object access control exists",
                ArgumentName="x-oss-object-acl",
                ArgumentValue=acl,
            )
        user_meta: dict[str, str] = {}
        meta_bytes = 0
        for k, v in c.headers.items():  # type: ignore[attr-defined]
            lk = k.lower()
            if lk.startswith("x-oss-meta-"):
                user_meta[lk] = v
                meta_bytes += len(lk.encode("latin-1", "replace")) + len(
                    v.encode("latin-1", "replace")
                )
        if meta_bytes > MAX_USER_META_BYTES:
            raise OssError(
                "InvalidArgument",
                "Your metadata headers exceed the maximum allowed metadata size: "
                f"{meta_bytes} bytes of x-oss-meta-* names and values, at most "
                f"{MAX_USER_META_BYTES}.",
                ec="0011-00000002",
                ArgumentName="x-oss-meta-*",
            )
        stored = {}
        for name in STORED_HEADERS:
            value = c.header(name)
            if value:
                stored[name] = value
        return WriteAttrs(ctype, storage_class, user_meta, stored)

    @staticmethod
    def _forbid_overwrite(c: Ctx) -> bool:
        return c.header("x-oss-forbid-overwrite").lower() == "true"

    def _check_length(self, c: Ctx) -> None:
        if c.body.length is None:
            return  # chunked: counted as it arrives
        if "Content-Length" not in c.headers:  # type: ignore[operator]
            raise OssError("MissingContentLength")
        if c.body.length > MAX_OBJECT_SIZE:
            raise OssError(
                "EntityTooLarge",
                MaxSizeAllowed=str(MAX_OBJECT_SIZE),
                ProposedSize=str(c.body.length),
            )

    def _receive(self, c: Ctx) -> TempFile:
        """Stream the request body into a new temp file (MD5 + CRC-64 on the way)."""
        expected = self._expected_md5(c)
        temp = self.server.store.new_temp()
        try:
            buf = self._buffer()
            while n := c.body.readinto(buf):
                if temp.size + n > MAX_OBJECT_SIZE:
                    raise OssError("EntityTooLarge")
                temp.write(buf[:n])
            if expected is not None and temp.md5_digest != expected:
                raise OssError(
                    "BadDigest",
                    ExpectedMD5=base64.b64encode(expected).decode(),
                    CalculatedMD5=base64.b64encode(temp.md5_digest).decode(),
                )
        except BaseException:
            temp.discard()
            raise
        return temp

    @staticmethod
    def _put_headers(etag: str, crc: int, md5: bytes | None = None) -> list[tuple[str, str]]:
        headers = [("ETag", X.quoted_etag(etag)), ("x-oss-hash-crc64ecma", str(crc))]
        if md5 is not None:
            headers.append(("Content-MD5", base64.b64encode(md5).decode()))
        return headers

    # ---- service / buckets

    def _list_buckets(self, c: Ctx) -> Response:
        prefix = c.q.get("prefix")
        marker = c.q.get("marker")
        max_keys = _int_param(c.q, "max-keys", 100, 1, 1000) if "max-keys" in c.q else None
        buckets = [
            b
            for b in self.server.store.list_buckets()
            if (not prefix or b.name.startswith(prefix)) and (not marker or b.name > marker)
        ]
        limit = max_keys or 1000
        truncated = len(buckets) > limit
        return _xml(X.list_buckets(buckets[:limit], c.host, prefix, marker, max_keys, truncated))

    def _create_bucket(self, c: Ctx) -> Response:
        assert c.bucket is not None
        storage_class = X.parse_create_bucket(c.body.read_all(X.MAX_XML_BODY))
        if storage_class and storage_class not in STORAGE_CLASSES:
            raise OssError(
                "InvalidArgument",
                "Unsupported storage class.",
                ArgumentName="StorageClass",
                ArgumentValue=storage_class,
            )
        acl = c.header("x-oss-acl")
        if acl and acl not in BUCKET_ACLS:
            raise OssError(
                "InvalidArgument",
                "no such bucket access control exists",
                ArgumentName="x-oss-acl",
                ArgumentValue=acl,
            )
        self.server.store.create_bucket(c.bucket, storage_class, acl)
        return Response(200, [("Location", f"/{c.bucket}")])

    def _put_bucket_acl(self, c: Ctx) -> Response:
        b = self._bucket(c)
        acl = c.header("x-oss-acl")
        if not acl:
            acl = X.parse_acl(c.body.read_all(X.MAX_XML_BODY))
        if acl not in BUCKET_ACLS:
            raise OssError(
                "InvalidArgument",
                "no such bucket access control exists",
                ArgumentName="x-oss-acl",
                ArgumentValue=acl,
            )
        self.server.store.set_bucket_acl(b, acl)
        return Response(200)

    def _list_objects_v1(self, c: Ctx) -> Response:
        b = self._bucket(c)
        url = _url_encoding(c.q)
        prefix = c.q.get("prefix", "")
        marker = c.q.get("marker", "")
        delimiter = c.q.get("delimiter", "")
        max_keys = _int_param(c.q, "max-keys", 100, 0, 1000)
        contents, prefixes, truncated, last = self.server.store.list_objects(
            b, prefix, delimiter, marker, max_keys
        )
        return _xml(
            X.list_objects_v1(
                b.name,
                prefix,
                marker,
                max_keys,
                delimiter,
                url,
                contents,
                prefixes,
                truncated,
                last,
            )
        )

    def _list_objects_v2(self, c: Ctx) -> Response:
        b = self._bucket(c)
        url = _url_encoding(c.q)
        prefix = c.q.get("prefix", "")
        delimiter = c.q.get("delimiter", "")
        max_keys = _int_param(c.q, "max-keys", 100, 0, 1000)
        token = c.q.get("continuation-token")
        start_after = c.q.get("start-after")
        after = decode_token(token) if token is not None and token != "" else start_after or ""
        fetch_owner = c.q.get("fetch-owner", "").lower() == "true"
        contents, prefixes, truncated, last = self.server.store.list_objects(
            b, prefix, delimiter, after, max_keys
        )
        return _xml(
            X.list_objects_v2(
                b.name,
                prefix,
                start_after,
                token,
                max_keys,
                delimiter,
                url,
                fetch_owner,
                contents,
                prefixes,
                truncated,
                encode_token(last) if truncated else "",
            )
        )

    def _delete_multiple(self, c: Ctx) -> Response:
        b = self._bucket(c)
        url = _url_encoding(c.q)
        expected = self._expected_md5(c)
        raw = c.body.read_all(X.MAX_XML_BODY)
        if expected is not None and hashlib.md5(raw).digest() != expected:
            raise OssError("InvalidDigest", ContentMD5=c.header("Content-MD5"))
        quiet, keys = X.parse_delete(raw)
        for key in keys:
            self.server.store.delete_object(b, key)
        return _xml(X.delete_result([] if quiet else keys, url))

    # ---- objects

    def _put_object(self, c: Ctx) -> Response:
        b, key = self._object(c)
        self._check_length(c)
        attrs = self._attrs(c, key)
        forbid = self._forbid_overwrite(c)
        if forbid and key in b.objects:
            raise OssError("FileAlreadyExists", Key=key)
        temp = self._receive(c)
        md5 = temp.md5_digest
        meta = ObjectMeta(
            key=key,
            size=temp.size,
            etag=md5.hex().upper(),
            crc64=temp.crc,
            mtime=time.time(),
            content_type=attrs.content_type,
            storage_class=attrs.storage_class,
            user_meta=attrs.user_meta,
            headers=attrs.headers,
            content_md5=base64.b64encode(md5).decode(),
        )
        self.server.store.commit_object(b, temp, meta, forbid_overwrite=forbid)
        return Response(200, self._put_headers(meta.etag, meta.crc64, md5))

    def _get_object(self, c: Ctx) -> Response:
        b, key = self._object(c)
        obj = self.server.store.open_object(b, key)
        try:
            meta = obj.meta
            check_conditions(c.header, meta)
            headers = object_headers(meta, c.q)
            rng = None
            range_header = c.header("Range")
            if range_header:
                standard = c.header("x-oss-range-behavior").lower() == "standard"
                rng = parse_range(range_header, meta.size, standard)
            if rng is None:
                return Response(200, headers, file=obj, offset=0, length=meta.size)
            first, last = rng
            headers.append(("Content-Range", f"bytes {first}-{last}/{meta.size}"))
            return Response(206, headers, file=obj, offset=first, length=last - first + 1)
        except BaseException:
            obj.close()
            raise

    def _head_object(self, c: Ctx, meta_only: bool) -> Response:
        b, key = self._object(c)
        meta = self.server.store.head(b, key)
        if meta_only:
            headers = [
                ("ETag", X.quoted_etag(meta.etag)),
                ("Last-Modified", X.http_date(meta.mtime)),
                ("x-oss-hash-crc64ecma", str(meta.crc64)),
            ]
            return Response(200, headers, head_length=meta.size)
        check_conditions(c.header, meta)
        return Response(200, object_headers(meta, c.q), head_length=meta.size)

    def _delete_object(self, c: Ctx) -> Response:
        b, key = self._object(c)
        self.server.store.delete_object(b, key)
        return Response(204)

    def _get_object_acl(self, c: Ctx) -> Response:
        b, key = self._object(c)
        self.server.store.head(b, key)
        return _xml(X.access_control_policy("default"))

    def _put_object_acl(self, c: Ctx) -> Response:
        b, key = self._object(c)
        self.server.store.head(b, key)
        acl = c.header("x-oss-object-acl")
        if acl not in OBJECT_ACLS:
            raise OssError(
                "InvalidArgument",
                "no such object access control exists",
                ArgumentName="x-oss-object-acl",
                ArgumentValue=acl,
            )
        return Response(200)

    def _copy_source(self, c: Ctx) -> tuple[Bucket, str]:
        raw = c.header("x-oss-copy-source")
        path = raw.split("?", 1)[0]
        path = unquote(path, errors="surrogateescape")
        if path.startswith("/"):
            path = path[1:]
        src_bucket, sep, src_key = path.partition("/")
        if not sep or not src_key:
            raise OssError(
                "InvalidArgument",
                "Copy Source must mention the source bucket and key: /sourcebucket/sourcekey.",
                ArgumentName="x-oss-copy-source",
                ArgumentValue=raw,
            )
        validate_key(src_key)
        return self.server.store.get_bucket(src_bucket), src_key

    def _copy_object(self, c: Ctx) -> Response:
        b, key = self._object(c)
        src_bucket, src_key = self._copy_source(c)
        directive = (c.header("x-oss-metadata-directive") or "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise OssError(
                "InvalidArgument",
                "Unknown metadata directive.",
                ArgumentName="x-oss-metadata-directive",
                ArgumentValue=directive,
            )
        forbid = self._forbid_overwrite(c)
        requested = self._attrs(c, key)  # validated before any byte is copied
        store = self.server.store
        obj = store.open_object(src_bucket, src_key)
        try:
            src = obj.meta
            check_conditions(c.header, src, prefix="x-oss-copy-source-")
            if directive == "REPLACE":
                attrs = requested
            else:
                attrs = WriteAttrs(
                    src.content_type, src.storage_class, dict(src.user_meta), dict(src.headers)
                )
                if c.header("x-oss-storage-class"):
                    attrs.storage_class = requested.storage_class
            temp = store.new_temp(hashing=False)
            try:
                temp.copy_from(obj.fd, 0, src.size)
            except BaseException:
                temp.discard()
                raise
        finally:
            obj.close()
        meta = ObjectMeta(
            key=key,
            size=src.size,
            etag=src.etag,
            crc64=src.crc64,
            mtime=time.time(),
            content_type=attrs.content_type,
            object_type=src.object_type,
            storage_class=attrs.storage_class,
            user_meta=attrs.user_meta,
            headers=attrs.headers,
            content_md5=src.content_md5,
        )
        store.commit_object(b, temp, meta, forbid_overwrite=forbid)
        return _xml(
            X.copy_object_result(meta.etag, meta.mtime),
            headers=[("ETag", X.quoted_etag(meta.etag)), ("x-oss-hash-crc64ecma", str(meta.crc64))],
        )

    # ---- multipart

    def _upload_and_part(self, c: Ctx) -> tuple[Bucket, str, Upload, int]:
        b, key = self._object(c)
        upload_id = c.q.get("uploadId", "")
        number = _int_param(c.q, "partNumber", 0, 1, MAX_PART_NUMBER)
        if number == 0:
            raise OssError("InvalidArgument", "partNumber is required.", ArgumentName="partNumber")
        upload = self.server.store.get_upload(b, upload_id, key)
        return b, key, upload, number

    def _upload_part(self, c: Ctx) -> Response:
        b, _key, upload, number = self._upload_and_part(c)
        store = self.server.store
        if c.header("x-oss-copy-source"):
            return self._upload_part_copy(c, b, upload, number)
        self._check_length(c)
        temp = self._receive(c)
        md5 = temp.md5_digest
        part = PartMeta(number, temp.size, md5.hex().upper(), temp.crc, time.time())
        store.commit_part(b, upload, temp, part)
        return Response(200, self._put_headers(part.etag, part.crc64, md5))

    def _upload_part_copy(self, c: Ctx, b: Bucket, upload: Upload, number: int) -> Response:
        src_bucket, src_key = self._copy_source(c)
        store = self.server.store
        obj = store.open_object(src_bucket, src_key)
        try:
            src = obj.meta
            check_conditions(c.header, src, prefix="x-oss-copy-source-")
            first, last = 0, src.size - 1
            rng = c.header("x-oss-copy-source-range")
            if rng:
                parsed = parse_range(rng, src.size, standard=False)
                if parsed is not None:
                    first, last = parsed
            temp = store.new_temp()
            try:
                temp.copy_hashed_from(obj.fd, first, last - first + 1)
            except BaseException:
                temp.discard()
                raise
        finally:
            obj.close()
        md5 = temp.md5_digest
        part = PartMeta(number, temp.size, md5.hex().upper(), temp.crc, time.time())
        store.commit_part(b, upload, temp, part)
        return _xml(
            X.copy_part_result(part.etag, part.mtime),
            headers=[("ETag", X.quoted_etag(part.etag)), ("x-oss-hash-crc64ecma", str(part.crc64))],
        )

    def _initiate_upload(self, c: Ctx) -> Response:
        b, key = self._object(c)
        url = _url_encoding(c.q)
        attrs = self._attrs(c, key)
        if self._forbid_overwrite(c) and key in b.objects:
            raise OssError("FileAlreadyExists", Key=key)
        upload = self.server.store.create_upload(b, key, attrs)
        return _xml(X.initiate_result(b.name, key, upload.upload_id, url))

    def _list_parts(self, c: Ctx) -> Response:
        b, key = self._object(c)
        url = _url_encoding(c.q)
        upload = self.server.store.get_upload(b, c.q.get("uploadId", ""), key)
        max_parts = _int_param(c.q, "max-parts", 1000, 1, 1000)
        marker = _int_param(c.q, "part-number-marker", 0, 0, MAX_PART_NUMBER)
        with b.lock:
            numbers = sorted(n for n in upload.parts if n > marker)
            parts = [upload.parts[n] for n in numbers[:max_parts]]
        truncated = len(numbers) > max_parts
        return _xml(X.list_parts(b.name, upload, marker, max_parts, parts, truncated, url))

    def _complete_upload(self, c: Ctx) -> Response:
        b, key = self._object(c)
        url = _url_encoding(c.q)
        store = self.server.store
        upload = store.get_upload(b, c.q.get("uploadId", ""), key)
        wanted: list[tuple[int, str]] | None
        if c.header("x-oss-complete-all").lower() == "yes":
            raw = c.body.read_all(X.MAX_XML_BODY)
            if raw.strip():
                raise OssError(
                    "InvalidArgument", "Should not specify both complete all header and http body."
                )
            wanted = None
        else:
            expected = self._expected_md5(c)
            raw = c.body.read_all(X.MAX_XML_BODY)
            if expected is not None and hashlib.md5(raw).digest() != expected:
                raise OssError("InvalidDigest", ContentMD5=c.header("Content-MD5"))
            wanted = X.parse_complete(raw)
        meta = store.complete_upload(b, upload, wanted, forbid_overwrite=self._forbid_overwrite(c))
        location = f"http://{c.host}/{b.name}/{key}"
        return _xml(
            X.complete_result(b.name, key, meta.etag, location, url),
            headers=[("ETag", X.quoted_etag(meta.etag)), ("x-oss-hash-crc64ecma", str(meta.crc64))],
        )

    def _abort_upload(self, c: Ctx) -> Response:
        b, key = self._object(c)
        self.server.store.abort_upload(b, c.q.get("uploadId", ""), key)
        return Response(204)

    def _list_uploads(self, c: Ctx) -> Response:
        b = self._bucket(c)
        url = _url_encoding(c.q)
        prefix = c.q.get("prefix", "")
        delimiter = c.q.get("delimiter", "")
        key_marker = c.q.get("key-marker", "")
        id_marker = c.q.get("upload-id-marker", "")
        max_uploads = _int_param(c.q, "max-uploads", 1000, 1, 1000)
        uploads = [u for u in self.server.store.iter_uploads(b) if u.key.startswith(prefix)]
        start = 0
        if key_marker:
            start = len(uploads)
            for i, u in enumerate(uploads):
                if u.key > key_marker:
                    start = i
                    break
            if id_marker:
                for i, u in enumerate(uploads):
                    if u.key == key_marker and u.upload_id == id_marker:
                        start = i + 1
                        break
        chosen: list[Upload] = []
        prefixes: list[str] = []
        truncated = False
        next_key = next_id = ""
        i = start
        while i < len(uploads):
            u = uploads[i]
            if delimiter:
                j = u.key.find(delimiter, len(prefix))
                if j >= 0:
                    common = u.key[: j + len(delimiter)]
                    if len(chosen) + len(prefixes) >= max_uploads:
                        truncated = True
                        break
                    prefixes.append(common)
                    next_key, next_id = common, ""
                    while i < len(uploads) and uploads[i].key.startswith(common):
                        i += 1
                    continue
            if len(chosen) + len(prefixes) >= max_uploads:
                truncated = True
                break
            chosen.append(u)
            next_key, next_id = u.key, u.upload_id
            i += 1
        return _xml(
            X.list_uploads(
                b.name,
                prefix,
                delimiter,
                key_marker,
                id_marker,
                max_uploads,
                chosen,
                prefixes,
                truncated,
                next_key,
                next_id,
                url,
            )
        )


def make_server(
    store: Store,
    auth: Authenticator,
    host: str = "127.0.0.1",
    port: int = 0,
    domains: list[str] | None = None,
) -> OssHttpServer:
    return OssHttpServer((host, port), store, auth, domains)


def serve_in_thread(server: OssHttpServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="ossd", daemon=True
    )
    thread.start()
    return thread
