"""XML documents as OSS writes them: no namespace, ``<?xml ... UTF-8?>`` prolog.

oss2 parses with ``ElementTree.find('IsTruncated')`` & co., which fails on a namespaced
document (S3 servers use one), so none is emitted. Dates are ``2024-01-31T12:00:00.000Z``:
oss2's ISO-8601 parser accepts exactly ``.000Z``.
"""

from __future__ import annotations

import base64
import time
import xml.etree.ElementTree as ET
from email.utils import formatdate
from urllib.parse import quote
from xml.sax.saxutils import escape

from sharelift.ossd.errors import OssError
from sharelift.ossd.store import Bucket, ObjectMeta, PartMeta, Upload

PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n'
OWNER_ID = "1000000000000000"
OWNER_NAME = "sharelift-ossd"
MAX_XML_BODY = 8 * 1024 * 1024


def iso8601(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


_ENTITIES = {"\r": "&#13;"}


def text(value: object) -> str:
    return escape(str(value), _ENTITIES)


def name(value: str, url: bool) -> str:
    """A key or prefix: percent-encoded with ``encoding-type=url``, else XML-escaped."""
    if url:
        return quote(value.encode("utf-8", "surrogatepass"), safe="/")
    return escape(value, _ENTITIES)


def quoted_etag(etag: str) -> str:
    return f'"{etag}"'


def _doc(body: str) -> bytes:
    return (PROLOG + body).encode("utf-8", "surrogatepass")


def _el(tag: str, value: object) -> str:
    return f"<{tag}>{value}</{tag}>"


def owner() -> str:
    return f"<Owner><ID>{OWNER_ID}</ID><DisplayName>{OWNER_NAME}</DisplayName></Owner>"


# ---- errors


def error_document(err: OssError, request_id: str, host_id: str) -> bytes:
    parts = [
        _el("Code", text(err.code)),
        _el("Message", text(err.message)),
        _el("RequestId", request_id),
        _el("HostId", text(host_id)),
    ]
    parts += [_el(k, text(v)) for k, v in err.extra.items()]
    if err.ec:
        parts.append(_el("EC", err.ec))
        parts.append(_el("RecommendDoc", f"https://api.aliyun.com/troubleshoot?q={err.ec}"))
    return _doc("<Error>\n  " + "\n  ".join(parts) + "\n</Error>\n")


def error_header(document: bytes) -> str:
    return base64.b64encode(document).decode()


# ---- service and buckets


def list_buckets(
    buckets: list[Bucket],
    endpoint: str,
    prefix: str | None,
    marker: str | None,
    max_keys: int | None,
    truncated: bool,
) -> bytes:
    out = ["<ListAllMyBucketsResult>", owner()]
    if prefix is not None or marker is not None or max_keys is not None:
        out.append(_el("Prefix", text(prefix or "")))
        out.append(_el("Marker", text(marker or "")))
        if max_keys is not None:
            out.append(_el("MaxKeys", max_keys))
        out.append(_el("IsTruncated", str(truncated).lower()))
        if truncated and buckets:
            out.append(_el("NextMarker", text(buckets[-1].name)))
    out.append("<Buckets>")
    for b in buckets:
        out.append(
            "<Bucket>"
            + _el("CreationDate", iso8601(b.created))
            + _el("ExtranetEndpoint", text(endpoint))
            + _el("IntranetEndpoint", text(endpoint))
            + _el("Location", f"oss-{text(b.region)}")
            + _el("Name", text(b.name))
            + _el("Region", text(b.region))
            + _el("StorageClass", text(b.storage_class))
            + "</Bucket>"
        )
    out.append("</Buckets></ListAllMyBucketsResult>")
    return _doc("".join(out))


def bucket_info(b: Bucket, endpoint: str) -> bytes:
    return _doc(
        "<BucketInfo><Bucket>"
        + _el("AccessMonitor", "Disabled")
        + _el("CreationDate", iso8601(b.created))
        + _el("CrossRegionReplication", "Disabled")
        + _el("DataRedundancyType", "LRS")
        + _el("ExtranetEndpoint", text(endpoint))
        + _el("IntranetEndpoint", text(endpoint))
        + _el("Location", f"oss-{text(b.region)}")
        + _el("Name", text(b.name))
        + _el("Region", text(b.region))
        + _el("ResourceGroupId", "rg-default")
        + _el("StorageClass", text(b.storage_class))
        + _el("TransferAcceleration", "Disabled")
        + owner()
        + "<AccessControlList>"
        + _el("Grant", text(b.acl))
        + "</AccessControlList>"
        + _el("Comment", "")
        + "<BucketPolicy><LogBucket></LogBucket><LogPrefix></LogPrefix></BucketPolicy>"
        + "</Bucket></BucketInfo>"
    )


def bucket_location(b: Bucket) -> bytes:
    return _doc(_el("LocationConstraint", f"oss-{text(b.region)}"))


def bucket_stat(objects: int, size: int, uploads: int) -> bytes:
    now = int(time.time())
    return _doc(
        "<BucketStat>"
        + _el("Storage", size)
        + _el("ObjectCount", objects)
        + _el("MultipartUploadCount", uploads)
        + _el("LiveChannelCount", 0)
        + _el("LastModifiedTime", now)
        + _el("StandardStorage", size)
        + _el("StandardObjectCount", objects)
        + "</BucketStat>"
    )


def access_control_policy(grant: str) -> bytes:
    return _doc(
        "<AccessControlPolicy>"
        + owner()
        + "<AccessControlList>"
        + _el("Grant", text(grant))
        + "</AccessControlList></AccessControlPolicy>"
    )


def versioning() -> bytes:
    return _doc("<VersioningConfiguration></VersioningConfiguration>")


# ---- listing


def _contents(m: ObjectMeta, url: bool, with_owner: bool) -> str:
    return (
        "<Contents>"
        + _el("Key", name(m.key, url))
        + _el("LastModified", iso8601(m.mtime))
        + _el("ETag", quoted_etag(m.etag))
        + _el("Type", m.object_type)
        + _el("Size", m.size)
        + _el("StorageClass", text(m.storage_class))
        + (owner() if with_owner else "")
        + "</Contents>"
    )


def _common_prefixes(prefixes: list[str], url: bool) -> str:
    return "".join(
        f"<CommonPrefixes>{_el('Prefix', name(p, url))}</CommonPrefixes>" for p in prefixes
    )


def list_objects_v1(
    bucket: str,
    prefix: str,
    marker: str,
    max_keys: int,
    delimiter: str,
    url: bool,
    contents: list[ObjectMeta],
    prefixes: list[str],
    truncated: bool,
    next_marker: str,
) -> bytes:
    out = [
        "<ListBucketResult>",
        _el("Name", text(bucket)),
        _el("Prefix", name(prefix, url)),
        _el("Marker", name(marker, url)),
        _el("MaxKeys", max_keys),
        _el("Delimiter", name(delimiter, url)),
    ]
    if url:
        out.append(_el("EncodingType", "url"))
    out.append(_el("IsTruncated", str(truncated).lower()))
    if truncated:
        out.append(_el("NextMarker", name(next_marker, url)))
    out += [_contents(m, url, True) for m in contents]
    out.append(_common_prefixes(prefixes, url))
    out.append("</ListBucketResult>")
    return _doc("".join(out))


def list_objects_v2(
    bucket: str,
    prefix: str,
    start_after: str | None,
    token: str | None,
    max_keys: int,
    delimiter: str,
    url: bool,
    fetch_owner: bool,
    contents: list[ObjectMeta],
    prefixes: list[str],
    truncated: bool,
    next_token: str,
) -> bytes:
    out = [
        "<ListBucketResult>",
        _el("Name", text(bucket)),
        _el("Prefix", name(prefix, url)),
    ]
    if start_after is not None:
        out.append(_el("StartAfter", name(start_after, url)))
    if token is not None:
        out.append(_el("ContinuationToken", text(token)))
    out.append(_el("MaxKeys", max_keys))
    out.append(_el("Delimiter", name(delimiter, url)))
    if url:
        out.append(_el("EncodingType", "url"))
    out.append(_el("IsTruncated", str(truncated).lower()))
    if truncated:
        out.append(_el("NextContinuationToken", text(next_token)))
    out.append(_el("KeyCount", len(contents) + len(prefixes)))
    out += [_contents(m, url, fetch_owner) for m in contents]
    out.append(_common_prefixes(prefixes, url))
    out.append("</ListBucketResult>")
    return _doc("".join(out))


# ---- objects


def copy_object_result(etag: str, mtime: float) -> bytes:
    return _doc(
        "<CopyObjectResult>"
        + _el("ETag", quoted_etag(etag))
        + _el("LastModified", iso8601(mtime))
        + "</CopyObjectResult>"
    )


def copy_part_result(etag: str, mtime: float) -> bytes:
    return _doc(
        "<CopyPartResult>"
        + _el("LastModified", iso8601(mtime))
        + _el("ETag", quoted_etag(etag))
        + "</CopyPartResult>"
    )


def delete_result(deleted: list[str], url: bool) -> bytes:
    out = ["<DeleteResult>"]
    if url:
        out.append(_el("EncodingType", "url"))
    out += [f"<Deleted>{_el('Key', name(k, url))}</Deleted>" for k in deleted]
    out.append("</DeleteResult>")
    return _doc("".join(out))


# ---- multipart


def initiate_result(bucket: str, key: str, upload_id: str, url: bool) -> bytes:
    out = "<InitiateMultipartUploadResult>" + _el("Bucket", text(bucket))
    out += _el("Key", name(key, url)) + _el("UploadId", upload_id)
    if url:
        out += _el("EncodingType", "url")
    return _doc(out + "</InitiateMultipartUploadResult>")


def complete_result(bucket: str, key: str, etag: str, location: str, url: bool) -> bytes:
    out = "<CompleteMultipartUploadResult>"
    if url:
        out += _el("EncodingType", "url")
    out += _el("Location", text(location)) + _el("Bucket", text(bucket))
    out += _el("Key", name(key, url)) + _el("ETag", quoted_etag(etag))
    return _doc(out + "</CompleteMultipartUploadResult>")


def list_parts(
    bucket: str,
    upload: Upload,
    marker: int,
    max_parts: int,
    parts: list[PartMeta],
    truncated: bool,
    url: bool,
) -> bytes:
    next_marker = parts[-1].number if parts else marker
    out = [
        "<ListPartsResult>",
        _el("Bucket", text(bucket)),
        _el("Key", name(upload.key, url)),
        _el("UploadId", upload.upload_id),
        _el("StorageClass", text(upload.attrs.storage_class)),
        _el("PartNumberMarker", marker),
        _el("NextPartNumberMarker", next_marker),
        _el("MaxParts", max_parts),
        _el("IsTruncated", str(truncated).lower()),
    ]
    if url:
        out.append(_el("EncodingType", "url"))
    for p in parts:
        out.append(
            "<Part>"
            + _el("PartNumber", p.number)
            + _el("LastModified", iso8601(p.mtime))
            + _el("ETag", quoted_etag(p.etag))
            + _el("HashCrc64ecma", p.crc64)
            + _el("Size", p.size)
            + "</Part>"
        )
    out.append("</ListPartsResult>")
    return _doc("".join(out))


def list_uploads(
    bucket: str,
    prefix: str,
    delimiter: str,
    key_marker: str,
    upload_id_marker: str,
    max_uploads: int,
    uploads: list[Upload],
    prefixes: list[str],
    truncated: bool,
    next_key: str,
    next_id: str,
    url: bool,
) -> bytes:
    out = [
        "<ListMultipartUploadsResult>",
        _el("Bucket", text(bucket)),
        _el("KeyMarker", name(key_marker, url)),
        _el("UploadIdMarker", text(upload_id_marker)),
        _el("NextKeyMarker", name(next_key, url)),
        _el("NextUploadIdMarker", text(next_id)),
        _el("Delimiter", name(delimiter, url)),
        _el("Prefix", name(prefix, url)),
        _el("MaxUploads", max_uploads),
        _el("IsTruncated", str(truncated).lower()),
    ]
    if url:
        out.append(_el("EncodingType", "url"))
    for u in uploads:
        out.append(
            "<Upload>"
            + _el("Key", name(u.key, url))
            + _el("UploadId", u.upload_id)
            + _el("StorageClass", text(u.attrs.storage_class))
            + _el("Initiated", iso8601(u.initiated))
            + "</Upload>"
        )
    out.append(_common_prefixes(prefixes, url))
    out.append("</ListMultipartUploadsResult>")
    return _doc("".join(out))


# ---- request bodies


def parse(body: bytes) -> ET.Element:
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise OssError("MalformedXML")
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        raise OssError("MalformedXML") from None


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    root = parse(body)
    if root.tag != "CompleteMultipartUpload":
        raise OssError("MalformedXML")
    parts = []
    for node in root.findall("Part"):
        number = node.findtext("PartNumber")
        etag = node.findtext("ETag")
        if number is None or etag is None:
            raise OssError("MalformedXML")
        try:
            parts.append((int(number.strip()), etag.strip()))
        except ValueError:
            raise OssError("MalformedXML") from None
    return parts


def parse_delete(body: bytes) -> tuple[bool, list[str]]:
    root = parse(body)
    if root.tag != "Delete":
        raise OssError("MalformedXML")
    quiet = (root.findtext("Quiet") or "false").strip().lower() == "true"
    keys = []
    for node in root.findall("Object"):
        key = node.findtext("Key")
        if key is None:
            raise OssError("MalformedXML")
        keys.append(key)
    if len(keys) > 1000:
        raise OssError("MalformedXML", "You can delete at most 1000 objects in one request.")
    return quiet, keys


def parse_create_bucket(body: bytes) -> str:
    """The StorageClass of a CreateBucketConfiguration ('' when not given)."""
    if not body.strip():
        return ""
    root = parse(body)
    return (root.findtext("StorageClass") or "").strip()


def parse_acl(body: bytes) -> str:
    root = parse(body)
    return (root.findtext("AccessControlList/Grant") or "").strip()
