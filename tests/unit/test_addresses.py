"""Address rules (docs/addresses.md): names, prefixes, required fields, no secret in repr."""

from __future__ import annotations

import pytest

from sharelift.addresses import (
    DestinationAddress,
    SourceAddress,
    validate_address_name,
    validate_prefix,
)
from sharelift.errors import ConfigError


@pytest.mark.parametrize("name", ["abc", "nfs-src_01", "A" * 63])
def test_address_names_of_3_to_63_letters_digits_dash_underscore_are_accepted(name: str) -> None:
    assert validate_address_name(name) == name


@pytest.mark.parametrize("name", ["ab", "A" * 64, "has space", "dot.name", "slash/name", ""])
def test_other_address_names_are_refused_naming_the_field(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_address_name(name)
    assert info.value.field == "name"


@pytest.mark.parametrize("prefix", ["", "data/", "data/to/oss/"])
def test_prefix_may_be_empty_or_end_with_a_slash(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize(
    ("prefix", "rule"),
    [("/x/", "must not start with '/'"), ("data", "must end with '/'"), ("a//b/", "empty folder")],
)
def test_bad_prefixes_are_refused_with_the_rule(prefix: str, rule: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_prefix(prefix)
    assert info.value.field == "prefix"
    assert rule in str(info.value)


def test_an_oss_destination_needs_endpoint_bucket_and_keys() -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        DestinationAddress(
            name="dst", kind="oss", bucket="b-1", access_key_id="id", access_key_secret="s"
        )
    with pytest.raises(ConfigError, match="bucket"):
        DestinationAddress(
            name="dst",
            kind="oss",
            endpoint="http://127.0.0.1:1",
            bucket="Bad_Bucket",
            access_key_id="id",
            access_key_secret="s",
        )
    with pytest.raises(ConfigError, match="access_key_secret"):
        DestinationAddress(
            name="dst", kind="oss", endpoint="http://127.0.0.1:1", bucket="bkt", access_key_id="id"
        )


def test_the_region_for_v4_signing_comes_from_an_aliyun_endpoint() -> None:
    address = DestinationAddress(
        name="dst",
        kind="oss",
        endpoint="oss-cn-shanghai.aliyuncs.com",
        bucket="bkt",
        access_key_id="id",
        access_key_secret="s3cr3t-value",
    )
    assert address.region == "cn-shanghai"


def test_secrets_never_show_in_the_repr_of_an_address() -> None:
    dst = DestinationAddress(
        name="dst",
        kind="oss",
        endpoint="http://127.0.0.1:9",
        bucket="bkt",
        access_key_id="id",
        access_key_secret="TopSecretValue42",
    )
    src = SourceAddress(
        name="smb-src",
        protocol="smb",
        host="127.0.0.1",
        share="data",
        username="u",
        password="PasswordValue42",
    )
    assert "TopSecretValue42" not in repr(dst) and "TopSecretValue42" not in str(dst)
    assert "PasswordValue42" not in repr(src) and "PasswordValue42" not in str(src)
    assert dst.access_key_secret.reveal() == "TopSecretValue42"


def test_the_display_url_of_a_share_has_no_credentials() -> None:
    src = SourceAddress(
        name="smb-src",
        protocol="smb",
        host="files.example",
        share="data",
        path="/team/a",
        username="u",
        password="PasswordValue42",
    )
    assert src.display_url() == "smb://files.example/data/team/a"


def test_an_nfs_export_must_be_an_absolute_path() -> None:
    with pytest.raises(ConfigError) as info:
        SourceAddress(name="nfs-src", protocol="nfs", host="127.0.0.1", share="export")
    assert info.value.field == "share"


def test_a_sub_folder_may_not_climb_out_of_the_share() -> None:
    with pytest.raises(ConfigError) as info:
        SourceAddress(name="nfs-src", protocol="nfs", host="h", share="/e", path="a/../../etc")
    assert info.value.field == "path"
