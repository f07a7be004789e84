"""sharelift ossd through oss2, signing with V1 (oss2.Auth) and V4 (oss2.AuthV4)."""

from __future__ import annotations

import base64
import hashlib
import os
import time

import oss2
import pytest
import requests

from sharelift.checksum import crc64
from sharelift.local.ossd import OssServer

pytestmark = pytest.mark.servers

AWKWARD_KEYS = [
    "plain.txt",
    "dir/sub/deep/file.bin",
    "spaces in name.txt",
    "hash#question?percent%plus+amp&.txt",
    "unicode/中文/ファイル/ü.txt",
    "emoji/😀.txt",
    "a",
    "a/b",
    "a/b/c",
    "trailing-slash-folder/",
    "quote'dq\"lt<gt>.txt",
    "tab\tand-equals=semicolon;.txt",
]


def md5_etag(data: bytes) -> str:
    return hashlib.md5(data).hexdigest().upper()


# ---- objects


def test_put_get_roundtrip_keeps_bytes_and_user_metadata(bucket) -> None:
    data = os.urandom(100_000)
    bucket.put_object(
        "k/data.bin", data, headers={"x-oss-meta-Source-Mtime": "123", "x-oss-meta-mode": "644"}
    )
    got = bucket.get_object("k/data.bin")
    assert got.read() == data
    assert got.headers["x-oss-meta-source-mtime"] == "123"
    assert got.headers["x-oss-meta-mode"] == "644"
    assert got.headers["x-oss-object-type"] == "Normal"


def test_put_returns_upper_md5_etag_and_crc64(bucket) -> None:
    data = b"hello ossd" * 1000
    result = bucket.put_object("etag.txt", data)
    assert result.etag == md5_etag(data)
    assert result.headers["ETag"] == f'"{md5_etag(data)}"'
    assert result.crc == crc64(data)
    assert result.request_id


def test_enable_crc_put_and_download_pass(ossd: OssServer, bucket_name: str, tmp_path) -> None:
    bucket = ossd.bucket(bucket_name, enable_crc=True)
    data = os.urandom(300_000)
    bucket.put_object("crc.bin", data)  # oss2 raises InconsistentError on a CRC mismatch
    bucket.get_object_to_file("crc.bin", str(tmp_path / "crc.bin"))  # checks CRC too
    assert (tmp_path / "crc.bin").read_bytes() == data


def test_head_object_reports_size_type_and_dates(bucket) -> None:
    bucket.put_object("head.json", b"{}", headers={"Content-Type": "application/json"})
    head = bucket.head_object("head.json")
    assert head.content_length == 2
    assert head.content_type == "application/json"
    assert head.object_type == "Normal"
    assert abs(head.last_modified - time.time()) < 60
    assert head.server_crc == crc64(b"{}")
    meta = bucket.get_object_meta("head.json")
    assert meta.content_length == 2 and meta.etag == md5_etag(b"{}")


def test_get_range_returns_206_with_content_range(bucket) -> None:
    data = bytes(range(256)) * 40
    bucket.put_object("range.bin", data)
    got = bucket.get_object("range.bin", byte_range=(100, 199))
    assert got.status == 206
    assert got.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert got.read() == data[100:200]
    tail = bucket.get_object("range.bin", byte_range=(None, 10))
    assert tail.read() == data[-10:]
    open_end = bucket.get_object("range.bin", byte_range=(10000, None))
    assert open_end.read() == data[10000:]


def test_out_of_range_get_returns_whole_object_like_oss(bucket) -> None:
    data = b"x" * 1000
    bucket.put_object("r.bin", data)
    for header in ("bytes=0-1000", "bytes=1000-2000", "bytes=-2000", "bytes=5-1", "byte=0-1"):
        got = bucket.get_object("r.bin", headers={"Range": header})
        assert got.status == 200, header
        assert "Content-Range" not in got.headers
        assert got.read() == data


def test_standard_range_behavior_is_416_past_the_end(bucket) -> None:
    bucket.put_object("r.bin", b"x" * 1000)
    standard = {"x-oss-range-behavior": "standard"}
    with pytest.raises(oss2.exceptions.ServerError) as e:
        bucket.get_object("r.bin", headers={"Range": "bytes=1000-2000", **standard})
    assert e.value.status == 416 and e.value.code == "InvalidRange"
    clipped = bucket.get_object("r.bin", headers={"Range": "bytes=990-2000", **standard})
    assert clipped.status == 206 and clipped.read() == b"x" * 10


def test_delete_object_is_idempotent(bucket) -> None:
    bucket.put_object("gone.txt", b"1")
    assert bucket.delete_object("gone.txt").status == 204
    assert bucket.delete_object("gone.txt").status == 204
    assert not bucket.object_exists("gone.txt")


def test_batch_delete_reports_deleted_keys_and_quiet_mode(bucket) -> None:
    for key in AWKWARD_KEYS:
        bucket.put_object(key, b"1")
    result = bucket.batch_delete_objects(AWKWARD_KEYS[:6] + ["never-existed"])
    assert sorted(result.deleted_keys) == sorted(AWKWARD_KEYS[:6] + ["never-existed"])
    data = oss2.xml_utils.to_batch_delete_objects_request(AWKWARD_KEYS[6:], True)
    headers = {"Content-MD5": oss2.utils.content_md5(data)}
    resp = bucket._Bucket__do_bucket("POST", data=data, params={"delete": ""}, headers=headers)
    assert b"<Deleted>" not in resp.read()
    assert [o.key for o in oss2.ObjectIterator(bucket)] == []


def test_batch_delete_with_wrong_content_md5_is_invalid_digest(bucket) -> None:
    data = oss2.xml_utils.to_batch_delete_objects_request(["x"], False)
    headers = {"Content-MD5": oss2.utils.content_md5(b"other")}
    with pytest.raises(oss2.exceptions.InvalidDigest):
        bucket._Bucket__do_bucket("POST", data=data, params={"delete": ""}, headers=headers)


def test_copy_object_with_awkward_keys_keeps_data_and_metadata(bucket) -> None:
    src = "src dir/100% ü+#?.bin"
    data = os.urandom(50_000)
    bucket.put_object(src, data, headers={"x-oss-meta-a": "1", "Content-Type": "image/png"})
    result = bucket.copy_object(bucket.bucket_name, src, "dst/a/b/c copy?.bin")
    assert result.etag == md5_etag(data)
    assert result.crc == crc64(data)
    got = bucket.get_object("dst/a/b/c copy?.bin")
    assert got.read() == data
    assert got.headers["x-oss-meta-a"] == "1"
    assert got.content_type == "image/png"


def test_copy_object_replace_directive_replaces_metadata(bucket) -> None:
    bucket.put_object("orig", b"data", headers={"x-oss-meta-a": "1"})
    bucket.copy_object(
        bucket.bucket_name,
        "orig",
        "orig",
        headers={"x-oss-metadata-directive": "REPLACE", "x-oss-meta-b": "2"},
    )
    head = bucket.head_object("orig")
    assert head.headers.get("x-oss-meta-b") == "2"
    assert "x-oss-meta-a" not in head.headers


def test_copy_from_missing_source_is_no_such_key(bucket) -> None:
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.copy_object(bucket.bucket_name, "missing", "dst")


def test_list_objects_v1_pages_with_delimiter_and_url_encoding(bucket) -> None:
    for key in AWKWARD_KEYS:
        bucket.put_object(key, b"1")
    keys, prefixes, marker, pages = [], [], "", 0
    while True:
        page = bucket.list_objects(delimiter="/", marker=marker, max_keys=2)
        keys += [o.key for o in page.object_list]
        prefixes += page.prefix_list
        pages += 1
        if not page.is_truncated:
            break
        marker = page.next_marker
    assert pages >= 4
    top = sorted(k for k in AWKWARD_KEYS if "/" not in k)
    assert keys == top
    assert prefixes == sorted({k.split("/")[0] + "/" for k in AWKWARD_KEYS if "/" in k})
    every = [o.key for o in oss2.ObjectIterator(bucket, max_keys=3)]
    assert every == sorted(AWKWARD_KEYS, key=lambda k: k.encode())


def test_list_objects_v2_pages_with_continuation_token(bucket) -> None:
    for key in AWKWARD_KEYS:
        bucket.put_object(key, b"1")
    seen, token = [], ""
    while True:
        page = bucket.list_objects_v2(continuation_token=token, max_keys=5, fetch_owner=True)
        seen += [o.key for o in page.object_list]
        assert all(o.owner is not None for o in page.object_list)
        if not page.is_truncated:
            break
        token = page.next_continuation_token
    assert seen == sorted(AWKWARD_KEYS, key=lambda k: k.encode())
    after = bucket.list_objects_v2(start_after="a/b", prefix="a")
    assert [o.key for o in after.object_list] == ["a/b/c"]
    sub = bucket.list_objects_v2(prefix="unicode/", delimiter="/")
    assert sub.prefix_list == ["unicode/中文/"]


def test_object_next_to_folder_with_same_name(bucket) -> None:
    bucket.put_object("a", b"file a")
    bucket.put_object("a/b", b"file a/b")
    assert bucket.get_object("a").read() == b"file a"
    assert bucket.get_object("a/b").read() == b"file a/b"
    page = bucket.list_objects(delimiter="/")
    assert [o.key for o in page.object_list] == ["a"]
    assert page.prefix_list == ["a/"]


def test_key_of_1023_bytes_works_and_1024_is_invalid(bucket) -> None:
    key = "d/" + "é" * 510 + "x"  # 2 + 1020 + 1 bytes
    assert len(key.encode()) == 1023
    bucket.put_object(key, b"long")
    assert bucket.get_object(key).read() == b"long"
    assert [o.key for o in oss2.ObjectIterator(bucket, prefix="d/")] == [key]
    with pytest.raises(oss2.exceptions.InvalidObjectName):
        bucket.put_object(key + "y", b"too long")


def test_content_md5_mismatch_is_bad_digest(bucket) -> None:
    with pytest.raises(oss2.exceptions.ServerError) as e:
        bucket.put_object("md5", b"data", headers={"Content-MD5": oss2.utils.content_md5(b"other")})
    assert e.value.code == "BadDigest" and e.value.status == 400
    assert not bucket.object_exists("md5")


def test_malformed_content_md5_is_invalid_digest(bucket) -> None:
    with pytest.raises(oss2.exceptions.InvalidDigest):
        bucket.put_object("md5", b"data", headers={"Content-MD5": "not-base64!"})


def test_forbid_overwrite_refuses_existing_key(bucket) -> None:
    bucket.put_object("once", b"1")
    with pytest.raises(oss2.exceptions.ServerError) as e:
        bucket.put_object("once", b"2", headers={"x-oss-forbid-overwrite": "true"})
    assert e.value.code == "FileAlreadyExists" and e.value.status == 409
    assert bucket.get_object("once").read() == b"1"


def test_presigned_urls_v1_and_v4(bucket) -> None:
    bucket.put_object("signed name+%.txt", b"presigned")
    url = bucket.sign_url("GET", "signed name+%.txt", 60)
    assert requests.get(url, timeout=10).content == b"presigned"
    tampered = url.replace("signed%20name", "signed%20nam")
    assert requests.get(tampered, timeout=10).status_code in (403, 404)


# ---- multipart


def test_resumable_upload_uses_multipart_with_combined_crc(
    ossd: OssServer, bucket_name: str, tmp_path
) -> None:
    bucket = ossd.bucket(bucket_name, enable_crc=True)
    data = os.urandom(1_000_000)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    store = oss2.ResumableStore(root=str(tmp_path / "ckpt"))
    result = oss2.resumable_upload(
        bucket,
        "multi/big.bin",
        str(path),
        store=store,
        multipart_threshold=200_000,
        part_size=200_000,
        num_threads=2,
    )
    head = bucket.head_object("multi/big.bin")
    assert head.object_type == "Multipart"
    assert head.server_crc == crc64(data) == result.crc
    assert head.etag.endswith("-5")
    parts_md5 = b"".join(
        hashlib.md5(data[i : i + 200_000]).digest() for i in range(0, len(data), 200_000)
    )
    assert head.etag == f"{hashlib.md5(parts_md5).hexdigest().upper()}-5"
    assert bucket.get_object("multi/big.bin").read() == data


def test_resumable_upload_resumes_from_listed_parts(
    ossd: OssServer, bucket_name: str, tmp_path
) -> None:
    bucket = ossd.bucket(bucket_name)
    data = os.urandom(600_000)
    path = tmp_path / "resume.bin"
    path.write_bytes(data)
    store = oss2.ResumableStore(root=str(tmp_path / "ckpt"))
    calls = {"n": 0}
    real_upload_part = bucket.upload_part

    def failing_upload_part(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise oss2.exceptions.RequestError(OSError("network down"))
        return real_upload_part(*args, **kwargs)

    bucket.upload_part = failing_upload_part  # type: ignore[method-assign]
    with pytest.raises(oss2.exceptions.RequestError):
        oss2.resumable_upload(
            bucket,
            "resume.bin",
            str(path),
            store=store,
            multipart_threshold=100_000,
            part_size=200_000,
            num_threads=1,
        )
    bucket.upload_part = real_upload_part  # type: ignore[method-assign]
    oss2.resumable_upload(
        bucket,
        "resume.bin",
        str(path),
        store=store,
        multipart_threshold=100_000,
        part_size=200_000,
        num_threads=1,
    )
    assert bucket.get_object("resume.bin").read() == data


def test_list_parts_pages_with_part_number_marker(bucket) -> None:
    upload_id = bucket.init_multipart_upload("lp.bin").upload_id
    for n in range(1, 6):
        bucket.upload_part("lp.bin", upload_id, n, bytes([n]) * 1000)
    page = bucket.list_parts("lp.bin", upload_id, max_parts=2)
    assert [p.part_number for p in page.parts] == [1, 2] and page.is_truncated
    page = bucket.list_parts("lp.bin", upload_id, marker=page.next_marker, max_parts=2)
    assert [p.part_number for p in page.parts] == [3, 4]
    every = list(oss2.PartIterator(bucket, "lp.bin", upload_id, max_parts=2))
    assert [p.size for p in every] == [1000] * 5
    assert every[0].etag == md5_etag(b"\x01" * 1000)


def test_complete_with_wrong_etag_is_invalid_part(bucket) -> None:
    upload_id = bucket.init_multipart_upload("bad.bin").upload_id
    bucket.upload_part("bad.bin", upload_id, 1, b"x" * 1000)
    with pytest.raises(oss2.exceptions.ServerError) as e:
        bucket.complete_multipart_upload("bad.bin", upload_id, [oss2.models.PartInfo(1, "0" * 32)])
    assert e.value.code == "InvalidPart"
    assert not bucket.object_exists("bad.bin")


def test_complete_out_of_order_is_invalid_part_order(bucket) -> None:
    upload_id = bucket.init_multipart_upload("order.bin").upload_id
    p1 = bucket.upload_part("order.bin", upload_id, 1, b"a" * 102400)
    p2 = bucket.upload_part("order.bin", upload_id, 2, b"b" * 10)
    body = (
        "<CompleteMultipartUpload>"
        f"<Part><PartNumber>2</PartNumber><ETag>{p2.etag}</ETag></Part>"
        f"<Part><PartNumber>1</PartNumber><ETag>{p1.etag}</ETag></Part>"
        "</CompleteMultipartUpload>"
    )
    with pytest.raises(oss2.exceptions.ServerError) as e:
        bucket._Bucket__do_object("POST", "order.bin", data=body, params={"uploadId": upload_id})
    assert e.value.code == "InvalidPartOrder"


def test_complete_with_small_middle_part_is_entity_too_small(bucket) -> None:
    upload_id = bucket.init_multipart_upload("small.bin").upload_id
    parts = [
        oss2.models.PartInfo(n, bucket.upload_part("small.bin", upload_id, n, b"s" * 1000).etag)
        for n in (1, 2)
    ]
    with pytest.raises(oss2.exceptions.ServerError) as e:
        bucket.complete_multipart_upload("small.bin", upload_id, parts)
    assert e.value.code == "EntityTooSmall"


def test_complete_all_header_joins_every_part(bucket) -> None:
    upload_id = bucket.init_multipart_upload("all.bin").upload_id
    bucket.upload_part("all.bin", upload_id, 1, b"a" * 102400)
    bucket.upload_part("all.bin", upload_id, 2, b"b" * 5)
    result = bucket.complete_multipart_upload(
        "all.bin", upload_id, None, headers={"x-oss-complete-all": "yes"}
    )
    assert result.crc == crc64(b"a" * 102400 + b"b" * 5)
    assert bucket.get_object("all.bin").read() == b"a" * 102400 + b"b" * 5


def test_abort_upload_then_upload_part_is_no_such_upload(bucket) -> None:
    upload_id = bucket.init_multipart_upload("abort.bin").upload_id
    bucket.upload_part("abort.bin", upload_id, 1, b"x")
    bucket.abort_multipart_upload("abort.bin", upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.upload_part("abort.bin", upload_id, 2, b"y")
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.list_parts("abort.bin", upload_id)


def test_list_multipart_uploads_shows_open_uploads(bucket) -> None:
    ids = {key: bucket.init_multipart_upload(key).upload_id for key in ("u/1", "u/2", "v")}
    listed = {(u.key, u.upload_id) for u in oss2.MultipartUploadIterator(bucket, max_uploads=1)}
    assert listed == set(ids.items())
    top = bucket.list_multipart_uploads(delimiter="/")
    assert top.prefix_list == ["u/"] and [u.key for u in top.upload_list] == ["v"]


def test_listed_uploads_carry_their_start_time_and_go_once_aborted(bucket) -> None:
    before = int(time.time())
    upload_id = bucket.init_multipart_upload("job/left.bin").upload_id
    bucket.init_multipart_upload("other/kept.bin")
    (listed,) = oss2.MultipartUploadIterator(bucket, prefix="job/")
    assert listed.upload_id == upload_id
    assert before - 1 <= listed.initiation_date <= int(time.time()) + 1
    bucket.abort_multipart_upload("job/left.bin", upload_id)
    assert list(oss2.MultipartUploadIterator(bucket, prefix="job/")) == []
    assert [u.key for u in oss2.MultipartUploadIterator(bucket)] == ["other/kept.bin"]


# ---- buckets


def test_list_buckets_and_bucket_info(ossd: OssServer, bucket_name: str) -> None:
    service = oss2.Service(ossd.auth(), ossd.endpoint, region=ossd.region)
    assert bucket_name in [b.name for b in oss2.BucketIterator(service)]
    info = ossd.bucket(bucket_name).get_bucket_info()
    assert info.name == bucket_name
    assert info.location == f"oss-{ossd.region}"
    assert info.storage_class == "Standard"
    assert ossd.bucket(bucket_name).get_bucket_location().location == f"oss-{ossd.region}"


def test_delete_non_empty_bucket_is_bucket_not_empty(ossd: OssServer, bucket_name: str) -> None:
    bucket = ossd.bucket(bucket_name)
    bucket.put_object("keep", b"1")
    with pytest.raises(oss2.exceptions.BucketNotEmpty):
        bucket.delete_bucket()
    bucket.delete_object("keep")
    bucket.delete_bucket()
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        bucket.get_bucket_info()


def test_create_existing_bucket_is_accepted_for_the_owner(
    ossd: OssServer, bucket_name: str
) -> None:
    assert ossd.bucket(bucket_name).create_bucket().status == 200


def test_invalid_bucket_name_is_rejected(ossd: OssServer) -> None:
    resp = requests.put(f"{ossd.endpoint}/Bad_Name", timeout=10)
    assert resp.status_code in (400, 403)


# ---- errors and authentication


def test_wrong_secret_is_signature_does_not_match(ossd: OssServer, bucket_name: str) -> None:
    for auth in (oss2.Auth(ossd.access_key_id, "wrong"), oss2.AuthV4(ossd.access_key_id, "wrong")):
        bad = oss2.Bucket(auth, ossd.endpoint, bucket_name, region=ossd.region)
        with pytest.raises(oss2.exceptions.ServerError) as e:
            bad.put_object("x", b"1")
        assert e.value.status == 403 and e.value.code == "SignatureDoesNotMatch"
        assert ossd.access_key_secret.reveal() not in str(e.value.body)


def test_unknown_access_key_is_invalid_access_key_id(ossd: OssServer, bucket_name: str) -> None:
    bad = oss2.Bucket(oss2.AuthV4("nobody", "x"), ossd.endpoint, bucket_name, region=ossd.region)
    with pytest.raises(oss2.exceptions.ServerError) as e:
        bad.get_object("x")
    assert e.value.status == 403 and e.value.code == "InvalidAccessKeyId"


def test_anonymous_request_is_access_denied(ossd: OssServer, bucket_name: str) -> None:
    anon = oss2.Bucket(oss2.AnonymousAuth(), ossd.endpoint, bucket_name)
    with pytest.raises(oss2.exceptions.AccessDenied):
        anon.get_object("x")


def test_v4_with_another_region_is_rejected(ossd: OssServer, bucket_name: str) -> None:
    other = oss2.Bucket(ossd.auth(), ossd.endpoint, bucket_name, region="us-west-1")
    with pytest.raises(oss2.exceptions.ServerError) as e:
        other.get_object("x")
    assert e.value.status == 400 and "region" in e.value.message


def test_missing_bucket_is_no_such_bucket(ossd: OssServer) -> None:
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        ossd.bucket("no-such-bucket-here").put_object("x", b"1")


def test_missing_key_is_no_such_key_with_request_id(bucket) -> None:
    with pytest.raises(oss2.exceptions.NoSuchKey) as e:
        bucket.get_object("missing")
    assert len(e.value.request_id) == 24
    assert e.value.details["Key"] == "missing"


def test_head_missing_key_is_no_such_key_from_x_oss_err(bucket) -> None:
    with pytest.raises(oss2.exceptions.NoSuchKey) as e:
        bucket.head_object("missing")
    assert e.value.request_id and e.value.body == b""
    xml = base64.b64decode(e.value.headers["x-oss-err"])
    assert b"<Code>NoSuchKey</Code>" in xml


# ---- addressing


def test_virtual_hosted_style_with_a_name_endpoint(ossd: OssServer, bucket_name: str) -> None:
    # oss2 treats "localhost" like an IP (path style), so a name below it is used; the
    # proxy setting sends the request to ossd without DNS for <bucket>.oss.localhost
    for auth in (ossd.auth("v1"), ossd.auth("v4")):
        bucket = oss2.Bucket(
            auth,
            f"http://oss.localhost:{ossd.port}",
            bucket_name,
            region=ossd.region,
            proxies={"http": ossd.endpoint},
        )
        assert (
            bucket._make_url(bucket_name, "k")
            == f"http://{bucket_name}.oss.localhost:{ossd.port}/k"
        )
        bucket.put_object("virtual/k y", b"v")
        assert bucket.get_object("virtual/k y").read() == b"v"
        assert [o.key for o in oss2.ObjectIterator(bucket, prefix="virtual/")] == ["virtual/k y"]


def test_virtual_hosted_style_from_the_host_header(ossd: OssServer, bucket_name: str) -> None:
    bucket = ossd.bucket(bucket_name, "v1")
    bucket.put_object("dir/host header.txt", b"by host")
    # a V1 signature covers /bucket/key whatever the addressing style: reuse its query
    query = bucket.sign_url("GET", "dir/host header.txt", 60).split("?", 1)[1]
    for host in (f"{bucket_name}.localhost:{ossd.port}", f"{bucket_name}.127.0.0.1"):
        resp = requests.get(
            f"{ossd.endpoint}/dir/host%20header.txt?{query}", headers={"Host": host}, timeout=10
        )
        assert resp.status_code == 200, resp.text
        assert resp.content == b"by host"


def test_conditional_get_answers_304_and_412(bucket) -> None:
    bucket.put_object("cond", b"c")
    etag = f'"{md5_etag(b"c")}"'
    with pytest.raises(oss2.exceptions.ServerError) as e:
        bucket.get_object("cond", headers={"If-None-Match": etag})
    assert e.value.status == 304
    with pytest.raises(oss2.exceptions.ServerError) as e:
        bucket.get_object("cond", headers={"If-Match": '"0123"'})
    assert e.value.status == 412 and e.value.code == "PreconditionFailed"
    assert bucket.get_object("cond", headers={"If-Match": etag}).read() == b"c"


def test_response_header_overrides_and_object_acl(bucket) -> None:
    bucket.put_object("o.bin", b"o")
    got = bucket.get_object("o.bin", params={"response-content-type": "text/x-test"})
    assert got.content_type == "text/x-test"
    bucket.put_object_acl("o.bin", oss2.OBJECT_ACL_PRIVATE)
    assert bucket.get_object_acl("o.bin").acl == "default"
    bucket.put_bucket_acl(oss2.BUCKET_ACL_PUBLIC_READ)
    assert bucket.get_bucket_acl().acl == "public-read"


def test_public_read_bucket_allows_anonymous_reads_only(ossd: OssServer, bucket_name: str) -> None:
    owner = ossd.bucket(bucket_name)
    owner.put_object("pub.txt", b"public")
    anon = oss2.Bucket(oss2.AnonymousAuth(), ossd.endpoint, bucket_name)
    with pytest.raises(oss2.exceptions.AccessDenied):
        anon.get_object("pub.txt")
    owner.put_bucket_acl(oss2.BUCKET_ACL_PUBLIC_READ)
    assert anon.get_object("pub.txt").read() == b"public"
    assert [o.key for o in oss2.ObjectIterator(anon)] == ["pub.txt"]
    with pytest.raises(oss2.exceptions.AccessDenied):
        anon.put_object("anon.txt", b"no")
