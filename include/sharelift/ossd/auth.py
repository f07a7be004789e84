"""Request signature checks, built the way oss2 and alibabacloud-oss-v2 sign.

Supported, in the ``Authorization`` header and as presigned URL query parameters:

* V1 (``OSS ak:sig``; query ``OSSAccessKeyId``/``Expires``/``Signature``): HMAC-SHA1 over
  verb, Content-MD5, Content-Type, Date (``x-oss-date`` wins), the ``x-oss-*`` headers and
  ``/bucket/key`` plus the *sub-resource* query parameters. oss2 and the v2 SDK sign
  different sub-resource sets; for the parameters sharelift uses they agree, otherwise we
  also try each SDK's own set.
* V2 (``OSS2 AccessKeyId:..,Signature:..``, oss2 ``AuthV2``): HMAC-SHA256, every query
  parameter, the resource fully percent-encoded.
* V4 (``OSS4-HMAC-SHA256 Credential=ak/date/region/oss/aliyun_v4_request,...``): the
  canonical request is ``verb / URI-encoded '/bucket/key' ('/' kept) / sorted encoded query
  / x-oss-* + content-type + content-md5 (+ AdditionalHeaders) / additional header names /
  x-oss-content-sha256 (UNSIGNED-PAYLOAD)``; the key is derived from ``aliyun_v4`` + secret
  through date, region, product and ``aliyun_v4_request``.

Header values are signed as the bytes that came over the wire; the query is decoded and
re-encoded the way both SDKs encode it (RFC 3986 unreserved characters kept).
The secret never appears in an error: OSS echoes the StringToSign, which has no secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from sharelift.ossd.errors import OssError

MAX_SKEW_SECONDS = 15 * 60

# oss2.auth.ProviderAuth._subresource_key_set
OSS2_SUBRESOURCES = frozenset(
    [
        "response-content-type",
        "response-content-language",
        "response-cache-control",
        "logging",
        "response-content-encoding",
        "acl",
        "uploadId",
        "uploads",
        "partNumber",
        "group",
        "link",
        "delete",
        "website",
        "location",
        "objectInfo",
        "objectMeta",
        "response-expires",
        "response-content-disposition",
        "cors",
        "lifecycle",
        "restore",
        "qos",
        "referer",
        "stat",
        "bucketInfo",
        "append",
        "position",
        "security-token",
        "live",
        "comp",
        "status",
        "vod",
        "startTime",
        "endTime",
        "x-oss-process",
        "symlink",
        "callback",
        "callback-var",
        "tagging",
        "encryption",
        "versions",
        "versioning",
        "versionId",
        "policy",
        "requestPayment",
        "x-oss-traffic-limit",
        "qosInfo",
        "asyncFetch",
        "x-oss-request-payer",
        "sequential",
        "inventory",
        "inventoryId",
        "continuation-token",
        "worm",
        "wormId",
        "wormExtend",
        "replication",
        "replicationLocation",
        "replicationProgress",
        "transferAcceleration",
        "cname",
        "metaQuery",
        "x-oss-ac-source-ip",
        "x-oss-ac-subnet-mask",
        "x-oss-ac-vpc-id",
        "x-oss-ac-forward-allow",
        "resourceGroup",
        "style",
        "styleName",
        "x-oss-async-process",
        "regionList",
        "x-oss-write-get-object-response",
        "bucketArchiveDirectRead",
        "httpsConfig",
        "redundancyTransition",
        "x-oss-target-redundancy-type",
        "x-oss-redundancy-transition-taskid",
        "accessPoint",
        "accessPointPolicy",
        "publicAccessBlock",
        "x-oss-access-point-name",
        "requesterQosInfo",
        "qosRequester",
        "resourcePoolInfo",
        "resourcePool",
        "resourcePoolBuckets",
    ]
)
# alibabacloud_oss_v2.signer.v1.SignerV1._subresource_key_set (+ per-operation extras)
V2SDK_SUBRESOURCES = frozenset(
    [
        "acl",
        "bucketInfo",
        "location",
        "stat",
        "delete",
        "append",
        "tagging",
        "objectMeta",
        "uploads",
        "uploadId",
        "partNumber",
        "security-token",
        "position",
        "response-content-type",
        "response-content-language",
        "response-expires",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "restore",
        "callback",
        "callback-var",
        "versions",
        "versioning",
        "versionId",
        "sequential",
        "continuation-token",
        "regionList",
        "cloudboxes",
        "symlink",
        "resourceGroup",
    ]
)
ALL_SUBRESOURCES = OSS2_SUBRESOURCES | V2SDK_SUBRESOURCES

V4_DEFAULT_SIGNED = ("content-type", "content-md5")
V1_PRESIGN_PARAMS = frozenset({"OSSAccessKeyId", "Expires", "Signature"})


def uri_encode(text: str, keep_slash: bool = False) -> str:
    """RFC 3986 encoding as both SDKs do it: only A-Z a-z 0-9 '-_.~' (and '/') stay."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="/" if keep_slash else "")


def _wire(value: str) -> str:
    """A header value as the bytes that came over the wire, in a str that UTF-8-encodes back.

    http.server decodes header bytes as latin-1; the SDKs sign UTF-8 strings. Turning the
    value back into its bytes keeps a non-ASCII value byte-exact in the StringToSign.
    """
    if value.isascii():
        return value
    return value.encode("latin-1", "replace").decode("utf-8", "surrogateescape")


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass
class SignedRequest:
    """What a signature covers. ``key`` is None for bucket and service requests."""

    method: str
    bucket: str | None
    key: str | None
    query: list[tuple[str, str]]  # decoded, in request order
    headers: list[tuple[str, str]]  # (lower-case name, value) in request order

    def header(self, name: str) -> str:
        for k, v in self.headers:
            if k == name:
                return v
        return ""

    def param(self, name: str) -> str | None:
        for k, v in self.query:
            if k == name:
                return v
        return None


class Authenticator:
    def __init__(self, access_key_id: str, access_key_secret: str, region: str | None) -> None:
        self.access_key_id = access_key_id
        self._secret = access_key_secret
        self.region = region  # None: accept any V4 signing region

    def __repr__(self) -> str:
        return f"Authenticator(access_key_id={self.access_key_id!r}, secret='***')"

    # ---- entry point

    def verify(self, req: SignedRequest, now: float | None = None) -> str:
        """Raise ``OssError`` unless the request is signed with our key. Returns the scheme."""
        now = time.time() if now is None else now
        auth = req.header("authorization")
        if auth:
            if auth.startswith("OSS4-HMAC-SHA256 "):
                self._verify_v4_header(req, auth, now)
                return "v4"
            if auth.startswith("OSS2 "):
                self._verify_v2_header(req, auth, now)
                return "v2"
            if auth.startswith("OSS "):
                self._verify_v1_header(req, auth, now)
                return "v1"
            raise OssError("InvalidArgument", "Authorization header is invalid.")
        version = req.param("x-oss-signature-version")
        if version == "OSS4-HMAC-SHA256":
            self._verify_v4_query(req, now)
            return "v4-query"
        if version == "OSS2":
            self._verify_v2_query(req, now)
            return "v2-query"
        if req.param("OSSAccessKeyId") is not None or req.param("Signature") is not None:
            self._verify_v1_query(req, now)
            return "v1-query"
        raise OssError(
            "AccessDenied", "You have no right to access this object because of bucket acl."
        )

    # ---- helpers

    def _check_key_id(self, key_id: str) -> None:
        if not hmac.compare_digest(key_id.encode(), self.access_key_id.encode()):
            raise OssError("InvalidAccessKeyId", OSSAccessKeyId=key_id)

    @staticmethod
    def _check_skew(when: float, now: float) -> None:
        if abs(now - when) > MAX_SKEW_SECONDS:
            raise OssError(
                "RequestTimeTooSkewed",
                RequestTime=datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                ServerTime=datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                MaxAllowedSkewMilliseconds=str(MAX_SKEW_SECONDS * 1000),
            )

    @staticmethod
    def _mismatch(provided: str, string_to_sign: str, **extra: str) -> OssError:
        data = _to_bytes(string_to_sign)
        return OssError(
            "SignatureDoesNotMatch",
            SignatureProvided=provided,
            StringToSign=string_to_sign.encode("utf-8", "surrogateescape").decode(
                "utf-8", "replace"
            ),
            StringToSignBytes=" ".join(f"{b:02x}" for b in data),
            **extra,  # type: ignore[arg-type]
        )

    # ---- V1

    @staticmethod
    def _v1_resource(req: SignedRequest, subresources: frozenset[str], skip: Iterable[str]) -> str:
        skip = set(skip)
        resource = f"/{req.bucket}/{req.key or ''}" if req.bucket else "/"
        pairs = sorted(
            ((k, v) for k, v in req.query if k in subresources and k not in skip),
            key=lambda kv: kv[0],
        )
        if pairs:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in pairs)
        return resource

    @staticmethod
    def _v1_oss_headers(req: SignedRequest) -> str:
        items = sorted((k, _wire(v)) for k, v in req.headers if k.startswith("x-oss-"))
        return "".join(f"{k}:{v}\n" for k, v in items)

    def _v1_string_to_sign(
        self, req: SignedRequest, date: str, subresources: frozenset[str], skip: Iterable[str] = ()
    ) -> str:
        return "\n".join(
            [
                req.method,
                _wire(req.header("content-md5")),
                _wire(req.header("content-type")),
                date,
                self._v1_oss_headers(req) + self._v1_resource(req, subresources, skip),
            ]
        )

    def _v1_sign(self, string_to_sign: str) -> str:
        mac = hmac.new(self._secret.encode(), _to_bytes(string_to_sign), hashlib.sha1)
        return base64.b64encode(mac.digest()).decode()

    def _v1_match(
        self, req: SignedRequest, date: str, provided: str, skip: Iterable[str] = ()
    ) -> None:
        first = ""
        for subresources in (ALL_SUBRESOURCES, OSS2_SUBRESOURCES, V2SDK_SUBRESOURCES):
            sts = self._v1_string_to_sign(req, date, subresources, skip)
            first = first or sts
            if hmac.compare_digest(self._v1_sign(sts).encode(), provided.encode()):
                return
        raise self._mismatch(provided, first, OSSAccessKeyId=self.access_key_id)

    def _verify_v1_header(self, req: SignedRequest, auth: str, now: float) -> None:
        cred = auth[4:].strip()
        key_id, sep, signature = cred.rpartition(":")
        if not sep or not key_id:
            raise OssError("InvalidArgument", "Authorization header is invalid.")
        self._check_key_id(key_id)
        date = _wire(req.header("x-oss-date") or req.header("date"))
        if not date:
            raise OssError("AccessDenied", "Date header not found.")
        try:
            when = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            raise OssError("AccessDenied", "Invalid Date header.") from None
        self._check_skew(when, now)
        self._v1_match(req, date, signature)

    def _verify_v1_query(self, req: SignedRequest, now: float) -> None:
        key_id = req.param("OSSAccessKeyId") or ""
        expires = req.param("Expires") or ""
        signature = req.param("Signature") or ""
        self._check_key_id(key_id)
        try:
            expires_at = int(expires)
        except ValueError:
            raise OssError("AccessDenied", "Invalid Expires parameter.") from None
        if expires_at < now:
            raise OssError(
                "AccessDenied",
                "Request has expired.",
                Expires=expires,
                ServerTime=datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        self._v1_match(req, expires, signature, skip=V1_PRESIGN_PARAMS)

    # ---- V2 (oss2.AuthV2)

    def _v2_string_to_sign(
        self, req: SignedRequest, date: str, additional: list[str], skip: Iterable[str] = ()
    ) -> str:
        skip = set(skip)
        extra = set(additional)
        items = sorted(
            (k, _wire(v)) for k, v in req.headers if k.startswith("x-oss-") or k in extra
        )
        oss_headers = "".join(f"{k}:{v}\n" for k, v in items)
        resource = uri_encode(f"/{req.bucket}/{req.key or ''}" if req.bucket else "/")
        pairs = sorted(
            ((uri_encode(k), uri_encode(v)) for k, v in req.query if k not in skip),
            key=lambda kv: kv[0],
        )
        if pairs:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in pairs)
        return (
            f"{req.method}\n{_wire(req.header('content-md5'))}\n{_wire(req.header('content-type'))}\n"
            f"{date}\n{oss_headers}{';'.join(sorted(additional))}\n{resource}"
        )

    def _v2_check(self, string_to_sign: str, provided: str) -> None:
        mac = hmac.new(self._secret.encode(), _to_bytes(string_to_sign), hashlib.sha256)
        if not hmac.compare_digest(base64.b64encode(mac.digest()), provided.encode()):
            raise self._mismatch(provided, string_to_sign, OSSAccessKeyId=self.access_key_id)

    def _verify_v2_header(self, req: SignedRequest, auth: str, now: float) -> None:
        fields: dict[str, str] = {}
        for item in auth[5:].split(","):
            name, _, value = item.strip().partition(":")
            fields[name] = value
        self._check_key_id(fields.get("AccessKeyId", ""))
        additional = [h for h in fields.get("AdditionalHeaders", "").split(";") if h]
        date = _wire(req.header("date"))
        try:
            self._check_skew(parsedate_to_datetime(date).timestamp(), now)
        except (TypeError, ValueError):
            raise OssError("AccessDenied", "Invalid Date header.") from None
        self._v2_check(self._v2_string_to_sign(req, date, additional), fields.get("Signature", ""))

    def _verify_v2_query(self, req: SignedRequest, now: float) -> None:
        self._check_key_id(req.param("x-oss-access-key-id") or "")
        expires = req.param("x-oss-expires") or ""
        try:
            if int(expires) < now:
                raise OssError("AccessDenied", "Request has expired.")
        except ValueError:
            raise OssError("AccessDenied", "Invalid x-oss-expires parameter.") from None
        additional = [h for h in (req.param("x-oss-additional-headers") or "").split(";") if h]
        sts = self._v2_string_to_sign(req, expires, additional, skip=("x-oss-signature",))
        self._v2_check(sts, req.param("x-oss-signature") or "")

    # ---- V4

    def _v4_canonical_request(
        self, req: SignedRequest, additional: list[str], skip: Iterable[str] = ()
    ) -> str:
        skip = set(skip)
        uri = "/"
        if req.bucket:
            uri += req.bucket + "/"
            if req.key:
                uri += req.key
        pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in req.query if k not in skip)
        query = "&".join(f"{k}={v}" if v else k for k, v in pairs)
        extra = set(additional)
        items = sorted(
            (k, _wire(v))
            for k, v in req.headers
            if k.startswith("x-oss-") or k in V4_DEFAULT_SIGNED or k in extra
        )
        headers = "".join(f"{k}:{v}\n" for k, v in items)
        payload = req.header("x-oss-content-sha256") or "UNSIGNED-PAYLOAD"
        return "\n".join(
            [
                req.method,
                uri_encode(uri, keep_slash=True),
                query,
                headers,
                ";".join(sorted(additional)),
                payload,
            ]
        )

    def _v4_check(
        self,
        req: SignedRequest,
        credential: str,
        stamp: str,
        additional: list[str],
        provided: str,
        skip: Iterable[str] = (),
    ) -> None:
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aliyun_v4_request":
            raise OssError("InvalidArgument", "Invalid credential in Authorization header.")
        key_id, date, region, product, _ = parts
        self._check_key_id(key_id)
        if self.region is not None and region != self.region:
            raise OssError(
                "InvalidArgument",
                f"Invalid signing region in Authorization header: {region!r}, expected "
                f"{self.region!r}.",
            )
        if stamp[:8] != date:
            raise OssError("InvalidArgument", "Invalid signing date in Authorization header.")
        canonical = self._v4_canonical_request(req, additional, skip)
        scope = f"{date}/{region}/{product}/aliyun_v4_request"
        string_to_sign = "\n".join(
            ["OSS4-HMAC-SHA256", stamp, scope, hashlib.sha256(_to_bytes(canonical)).hexdigest()]
        )
        k = hmac.new(b"aliyun_v4" + self._secret.encode(), date.encode(), hashlib.sha256).digest()
        k = hmac.new(k, region.encode(), hashlib.sha256).digest()
        k = hmac.new(k, product.encode(), hashlib.sha256).digest()
        k = hmac.new(k, b"aliyun_v4_request", hashlib.sha256).digest()
        expected = hmac.new(k, _to_bytes(string_to_sign), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), provided.lower().encode()):
            raise self._mismatch(
                provided,
                string_to_sign,
                OSSAccessKeyId=key_id,
                CanonicalRequest=canonical.encode("utf-8", "surrogateescape").decode(
                    "utf-8", "replace"
                ),
            )

    @staticmethod
    def _parse_stamp(stamp: str) -> float:
        try:
            return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise OssError("AccessDenied", "Invalid x-oss-date.") from None

    def _verify_v4_header(self, req: SignedRequest, auth: str, now: float) -> None:
        fields: dict[str, str] = {}
        for item in auth[len("OSS4-HMAC-SHA256 ") :].split(","):
            name, _, value = item.strip().partition("=")
            fields[name] = value
        credential = fields.get("Credential", "")
        signature = fields.get("Signature", "")
        if not credential or not signature:
            raise OssError("InvalidArgument", "Authorization header is invalid.")
        stamp = req.header("x-oss-date")
        if not stamp:
            raise OssError("AccessDenied", "x-oss-date header is required for V4 signatures.")
        self._check_skew(self._parse_stamp(stamp), now)
        additional = [
            h.strip().lower() for h in fields.get("AdditionalHeaders", "").split(";") if h.strip()
        ]
        self._v4_check(req, credential, stamp, additional, signature)

    def _verify_v4_query(self, req: SignedRequest, now: float) -> None:
        stamp = req.param("x-oss-date") or ""
        when = self._parse_stamp(stamp)
        try:
            expires = int(req.param("x-oss-expires") or "")
        except ValueError:
            raise OssError("AccessDenied", "Invalid x-oss-expires parameter.") from None
        if when - now > MAX_SKEW_SECONDS:
            self._check_skew(when, now)
        if when + expires < now:
            raise OssError("AccessDenied", "Request has expired.")
        additional = [
            h.strip().lower()
            for h in (req.param("x-oss-additional-headers") or "").split(";")
            if h.strip()
        ]
        self._v4_check(
            req,
            req.param("x-oss-credential") or "",
            stamp,
            additional,
            req.param("x-oss-signature") or "",
            skip=("x-oss-signature",),
        )
