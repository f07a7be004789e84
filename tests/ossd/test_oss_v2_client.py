"""sharelift ossd through alibabacloud-oss-v2 (the SDK Airflow's Alibaba provider uses)."""

from __future__ import annotations

import os

import alibabacloud_oss_v2 as oss
import pytest
import requests

from sharelift.checksum import crc64
from sharelift.local.ossd import OssServer

pytestmark = pytest.mark.servers

KEYS = ["a", "a/b", "a/b/c", "x y/z+%#?.txt", "ü/ñ/中.txt", "z"]


def service_error(exc_info: pytest.ExceptionInfo) -> oss.exceptions.ServiceError:
    err = exc_info.value.unwrap()
    assert isinstance(err, oss.exceptions.ServiceError)
    return err


def test_v2_put_get_head_with_default_crc_checks(v2_client, bucket_name: str) -> None:
    data = os.urandom(200_000)
    put = v2_client.put_object(
        oss.PutObjectRequest(
            bucket=bucket_name, key="v2/obj.bin", body=data, metadata={"mtime": "42"}
        )
    )
    assert put.hash_crc64 == str(crc64(data))
    got = v2_client.get_object(oss.GetObjectRequest(bucket=bucket_name, key="v2/obj.bin"))
    assert got.body.read() == data
    assert got.metadata == {"mtime": "42"}
    head = v2_client.head_object(oss.HeadObjectRequest(bucket=bucket_name, key="v2/obj.bin"))
    assert head.content_length == len(data) and head.object_type == "Normal"
    assert v2_client.is_object_exist(bucket_name, "v2/obj.bin")
    assert not v2_client.is_object_exist(bucket_name, "v2/missing")


def test_v2_range_get(v2_client, bucket_name: str) -> None:
    v2_client.put_object(oss.PutObjectRequest(bucket=bucket_name, key="r", body=b"0123456789"))
    got = v2_client.get_object(
        oss.GetObjectRequest(bucket=bucket_name, key="r", range_header="bytes=2-4")
    )
    assert got.body.read() == b"234"
    assert got.content_range == "bytes 2-4/10"


def test_v2_list_objects_v2_paginator_with_delimiter(v2_client, bucket_name: str) -> None:
    for key in KEYS:
        v2_client.put_object(oss.PutObjectRequest(bucket=bucket_name, key=key, body=b"1"))
    paginator = v2_client.list_objects_v2_paginator()
    keys, prefixes = [], []
    for page in paginator.iter_page(
        oss.ListObjectsV2Request(bucket=bucket_name, delimiter="/", max_keys=1)
    ):
        keys += [o.key for o in page.contents or []]
        prefixes += [p.prefix for p in page.common_prefixes or []]
    assert keys == ["a", "z"]
    assert prefixes == ["a/", "x y/", "ü/"]
    every = []
    for page in paginator.iter_page(oss.ListObjectsV2Request(bucket=bucket_name, max_keys=2)):
        every += [o.key for o in page.contents or []]
    assert every == sorted(KEYS, key=lambda k: k.encode())


def test_v2_list_objects_v1_paginator(v2_client, bucket_name: str) -> None:
    for key in KEYS:
        v2_client.put_object(oss.PutObjectRequest(bucket=bucket_name, key=key, body=b"1"))
    keys = []
    for page in v2_client.list_objects_paginator().iter_page(
        oss.ListObjectsRequest(bucket=bucket_name, prefix="a", max_keys=1)
    ):
        keys += [o.key for o in page.contents or []]
    assert keys == ["a", "a/b", "a/b/c"]


def test_v2_uploader_multipart_and_downloader(v2_client, bucket_name: str, tmp_path) -> None:
    data = os.urandom(700_000)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    uploader = v2_client.uploader(part_size=200 * 1024, parallel_num=2)
    result = uploader.upload_file(
        oss.PutObjectRequest(bucket=bucket_name, key="up/big.bin"), filepath=str(src)
    )
    assert result.hash_crc64 == str(crc64(data))
    head = v2_client.head_object(oss.HeadObjectRequest(bucket=bucket_name, key="up/big.bin"))
    assert head.object_type == "Multipart" and head.etag.endswith('-4"')
    dst = tmp_path / "down.bin"
    downloader = v2_client.downloader(part_size=200 * 1024, parallel_num=2)
    downloader.download_file(
        oss.GetObjectRequest(bucket=bucket_name, key="up/big.bin"), filepath=str(dst)
    )
    assert dst.read_bytes() == data


def test_v2_copy_object_and_multipart_copier(v2_client, bucket_name: str) -> None:
    data = os.urandom(300_000)
    v2_client.put_object(oss.PutObjectRequest(bucket=bucket_name, key="src/ü x+.bin", body=data))
    copied = v2_client.copy_object(
        oss.CopyObjectRequest(bucket=bucket_name, key="dst/1", source_key="src/ü x+.bin")
    )
    assert copied.hash_crc64 == str(crc64(data))
    copier = v2_client.copier(part_size=100 * 1024, multipart_copy_threshold=100 * 1024)
    copier.copy(oss.CopyObjectRequest(bucket=bucket_name, key="dst/2", source_key="src/ü x+.bin"))
    for key in ("dst/1", "dst/2"):
        got = v2_client.get_object(oss.GetObjectRequest(bucket=bucket_name, key=key))
        assert got.body.read() == data


def test_v2_delete_multiple_objects(v2_client, bucket_name: str) -> None:
    for key in KEYS:
        v2_client.put_object(oss.PutObjectRequest(bucket=bucket_name, key=key, body=b"1"))
    result = v2_client.delete_multiple_objects(
        oss.DeleteMultipleObjectsRequest(
            bucket=bucket_name, objects=[oss.DeleteObject(key=k) for k in KEYS]
        )
    )
    assert sorted(o.key for o in result.deleted_objects) == sorted(KEYS)
    listed = v2_client.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket_name))
    assert not listed.contents


def test_v2_missing_key_and_bucket_error_codes(v2_client, bucket_name: str) -> None:
    with pytest.raises(oss.exceptions.OperationError) as e:
        v2_client.get_object(oss.GetObjectRequest(bucket=bucket_name, key="nope"))
    err = service_error(e)
    assert (err.status_code, err.code) == (404, "NoSuchKey") and err.request_id
    with pytest.raises(oss.exceptions.OperationError) as e:
        v2_client.head_object(oss.HeadObjectRequest(bucket=bucket_name, key="nope"))
    assert service_error(e).code == "NoSuchKey"  # decoded from x-oss-err
    with pytest.raises(oss.exceptions.OperationError) as e:
        v2_client.get_bucket_info(oss.GetBucketInfoRequest(bucket="no-such-bucket-v2"))
    assert service_error(e).code == "NoSuchBucket"
    assert not v2_client.is_bucket_exist("no-such-bucket-v2")
    assert v2_client.is_bucket_exist(bucket_name)


def test_v2_wrong_secret_is_signature_does_not_match(make_v2_client, bucket_name: str) -> None:
    for version in ("v1", "v4"):
        client = make_v2_client(secret="wrong", signature_version=version)
        with pytest.raises(oss.exceptions.OperationError) as e:
            client.get_object(oss.GetObjectRequest(bucket=bucket_name, key="x"))
        err = service_error(e)
        assert (err.status_code, err.code) == (403, "SignatureDoesNotMatch")


def test_v2_unknown_key_is_invalid_access_key_id(make_v2_client, bucket_name: str) -> None:
    client = make_v2_client(access_key_id="nobody")
    with pytest.raises(oss.exceptions.OperationError) as e:
        client.get_object(oss.GetObjectRequest(bucket=bucket_name, key="x"))
    assert service_error(e).code == "InvalidAccessKeyId"


def test_v2_v1_signature_roundtrip(make_v2_client, bucket_name: str) -> None:
    client = make_v2_client(signature_version="v1")
    client.put_object(oss.PutObjectRequest(bucket=bucket_name, key="v1/ü+ x", body=b"v1"))
    got = client.get_object(oss.GetObjectRequest(bucket=bucket_name, key="v1/ü+ x"))
    assert got.body.read() == b"v1"
    listed = client.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket_name, prefix="v1/"))
    assert [o.key for o in listed.contents] == ["v1/ü+ x"]


def test_v2_presigned_get_and_put(v2_client, bucket_name: str) -> None:
    put = v2_client.presign(oss.PutObjectRequest(bucket=bucket_name, key="pre sign/ü"))
    assert (
        requests.put(put.url, data=b"via url", headers=put.signed_headers, timeout=10).status_code
        == 200
    )
    get = v2_client.presign(oss.GetObjectRequest(bucket=bucket_name, key="pre sign/ü"))
    assert requests.get(get.url, timeout=10).content == b"via url"


def test_v2_virtual_hosted_style(ossd: OssServer, make_v2_client, bucket_name: str) -> None:
    # proxy_host must be a dict: the SDK turns a str into {"http://": ...}, which requests ignores
    client = make_v2_client(
        endpoint=f"http://oss.localhost:{ossd.port}", proxy_host={"http": ossd.endpoint}
    )
    client.put_object(oss.PutObjectRequest(bucket=bucket_name, key="vh/key", body=b"vh"))
    got = client.get_object(oss.GetObjectRequest(bucket=bucket_name, key="vh/key"))
    assert got.body.read() == b"vh"


def test_v2_bucket_lifecycle(v2_client) -> None:
    name = "v2-made-bucket"
    v2_client.put_bucket(oss.PutBucketRequest(bucket=name))
    listed = v2_client.list_buckets(oss.ListBucketsRequest())
    assert name in [b.name for b in listed.buckets]
    info = v2_client.get_bucket_info(oss.GetBucketInfoRequest(bucket=name))
    assert info.bucket_info.name == name
    v2_client.put_object(oss.PutObjectRequest(bucket=name, key="k", body=b"1"))
    with pytest.raises(oss.exceptions.OperationError) as e:
        v2_client.delete_bucket(oss.DeleteBucketRequest(bucket=name))
    assert service_error(e).code == "BucketNotEmpty"
    v2_client.delete_object(oss.DeleteObjectRequest(bucket=name, key="k"))
    v2_client.delete_bucket(oss.DeleteBucketRequest(bucket=name))
    assert not v2_client.is_bucket_exist(name)


def test_testbed_v2_client_helper(ossd: OssServer, bucket_name: str) -> None:
    client = ossd.v2_client(retry_max_attempts=1)
    client.put_object(oss.PutObjectRequest(bucket=bucket_name, key="helper", body=b"h"))
    assert (
        client.get_object(oss.GetObjectRequest(bucket=bucket_name, key="helper")).body.read()
        == b"h"
    )
