"""OSS error responses: code, HTTP status and message, as OSS sends them.

An ``OssError`` raised anywhere while a request is handled becomes the XML ``<Error>``
document OSS answers with (for HEAD: no body, the same XML base64-encoded in the
``x-oss-err`` header, which both SDKs decode). ``extra`` adds the fields OSS adds for that
code (``Key``, ``BucketName``, ``StringToSign``...), in order.
"""

from __future__ import annotations

# code -> (HTTP status, default message, EC when we know OSS's value)
_CATALOG: dict[str, tuple[int, str, str]] = {
    "AccessDenied": (403, "AccessDenied", ""),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received.", ""),
    "BucketAlreadyExists": (
        409,
        "The requested bucket name is not available. The bucket namespace is shared by all "
        "users of the system. Please select a different name and try again.",
        "",
    ),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty.", ""),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed size.", ""),
    "EntityTooSmall": (400, "Your proposed upload smaller than the minimum allowed size.", ""),
    "FileAlreadyExists": (
        409,
        "The object you specified already exists and can not be overwritten.",
        "",
    ),
    "IncompleteBody": (400, "The request body is shorter than its Content-Length.", ""),
    "InternalError": (500, "We encountered an internal error. Please try again.", ""),
    "InvalidAccessKeyId": (
        403,
        "The OSS Access Key Id you provided does not exist in our records.",
        "",
    ),
    "InvalidArgument": (400, "Invalid argument.", ""),
    "InvalidBucketName": (400, "The specified bucket is not valid.", ""),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid.", ""),
    "InvalidObjectName": (400, "The specified object is not valid.", ""),
    "InvalidPart": (
        400,
        "One or more of the specified parts could not be found or the specified entity tag "
        "might not have matched the part's entity tag.",
        "",
    ),
    "InvalidPartOrder": (
        400,
        "The list of parts was not in ascending order. Parts list must specified in order by "
        "part number.",
        "",
    ),
    "InvalidRange": (416, "The requested range cannot be satisfied", ""),
    "InvalidRequest": (400, "Invalid request.", ""),
    "MalformedXML": (
        400,
        "The XML you provided was not well-formed or did not validate against our published "
        "schema.",
        "",
    ),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource.", ""),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header.", ""),
    "NoSuchBucket": (404, "The specified bucket does not exist.", "0015-00000101"),
    "NoSuchKey": (404, "The specified key does not exist.", "0026-00000001"),
    "NoSuchUpload": (
        404,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.",
        "",
    ),
    "NotImplemented": (
        501,
        "A header or query you provided implies functionality that is not "
        "implemented by sharelift ossd.",
        "",
    ),
    "PreconditionFailed": (
        412,
        "At least one of the pre-conditions you specified did not hold.",
        "",
    ),
    "RequestTimeTooSkewed": (
        403,
        "The difference between the request time and the current time is too large.",
        "",
    ),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided. Check "
        "your key and signing method.",
        "0002-00000040",
    ),
    "TooManyBuckets": (400, "You have attempted to create more buckets than allowed.", ""),
}


class OssError(Exception):
    """An error OSS would answer with. ``extra`` fields follow RequestId/HostId in the XML."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        ec: str | None = None,
        **extra: str,
    ) -> None:
        default_status, default_message, default_ec = _CATALOG.get(code, (400, code, ""))
        self.code = code
        self.status = status or default_status
        self.message = message or default_message
        self.ec = default_ec if ec is None else ec
        self.extra = extra
        super().__init__(f"{self.status} {code}: {self.message}")


class NotModified(Exception):
    """304 for a GET/HEAD whose If-None-Match / If-Modified-Since condition did not hold."""
