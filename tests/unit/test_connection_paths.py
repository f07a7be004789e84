"""Connections: every path field, and the source_path/prefix a run adds to it, follows the one
path rule; the error names the field (and the connection) and the rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.airflow.connections import destination_address, source_address
from sharelift.errors import ConfigError


@dataclass
class Conn:
    conn_id: str
    conn_type: str | None
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def extra_dejson(self) -> dict[str, Any]:
        return self.extra


LOCAL = Conn("local_src", "sharelift_local", extra={"path": "/srv/share"})
BUCKET = Conn("local_bkt", "sharelift_local_bucket", extra={"path": "/srv/bucket"})


@pytest.mark.parametrize("sub_path", ["..", "../outside", "a/../..", "./a", "a//b", "..\\x"])
def test_a_source_path_that_leaves_a_local_folder_is_refused(sub_path: str) -> None:
    with pytest.raises(ConfigError) as info:
        source_address(LOCAL, sub_path)
    assert info.value.field == "source_path"


@pytest.mark.parametrize("conn_type", ["sharelift_nfs", "sharelift_smb"])
def test_a_source_path_that_leaves_a_share_is_refused(conn_type: str) -> None:
    conn = Conn(
        "share", conn_type, host="127.0.0.1", schema="/export" if "nfs" in conn_type else "d"
    )
    with pytest.raises(ConfigError) as info:
        source_address(conn, "../x")
    assert info.value.field == "source_path"
    assert "'..' as a folder name" in info.value.rule


def test_a_sub_folder_of_a_local_folder_stays_below_it() -> None:
    assert source_address(LOCAL, "/team/a/").path == "/srv/share/team/a"


@pytest.mark.parametrize(
    ("conn", "field_name"),
    [
        (Conn("l", "sharelift_local", extra={"path": "/srv/../etc"}), "extra 'path'"),
        (Conn("l", "sharelift_local", host="relative/dir"), "host (the folder)"),
        (Conn("n", "sharelift_nfs", host="h", schema="/e/../x"), "schema (export path)"),
        (Conn("n", "sharelift_nfs", host="h", schema="/e", extra={"path": "a/.."}), "extra 'path'"),
        (Conn("s", "sharelift_smb", host="h", schema="d", extra={"path": "../x"}), "extra 'path'"),
    ],
    ids=["local-path", "local-host", "nfs-export", "nfs-path", "smb-path"],
)
def test_a_connection_path_field_that_escapes_is_refused_naming_connection_and_field(
    conn: Conn, field_name: str
) -> None:
    with pytest.raises(ConfigError) as info:
        source_address(conn)
    assert info.value.field == f"connection {conn.conn_id!r} {field_name}"


def test_an_smb_share_of_dot_dot_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        source_address(Conn("s", "sharelift_smb", host="h", schema=".."))
    assert info.value.field == "share"


@pytest.mark.parametrize("prefix", ["../", "a/../../", "./", "a//"])
def test_a_destination_prefix_that_leaves_the_bucket_folder_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError) as info:
        destination_address(BUCKET, prefix)
    assert info.value.field == "destination_prefix"


def test_the_connections_own_prefix_and_folder_follow_the_rule_too() -> None:
    with pytest.raises(ConfigError) as info:
        destination_address(
            Conn("b", "sharelift_local_bucket", extra={"path": "/x", "prefix": "../"})
        )
    assert info.value.field == "connection 'b' extra 'prefix'"
    with pytest.raises(ConfigError) as info:
        destination_address(Conn("b", "sharelift_local_bucket", extra={"path": "/x/../y"}))
    assert info.value.field == "connection 'b' extra 'path'"


def test_addresses_built_directly_follow_the_same_rule() -> None:
    """The CLI and tests build addresses without connections: no way around the rule."""
    with pytest.raises(ConfigError, match="'..' as a folder name"):
        SourceAddress(name="src", protocol="local", path="/srv/share/..")
    with pytest.raises(ConfigError, match="'..' as a folder name"):
        DestinationAddress(name="dst", kind="local", path="/srv/bucket", prefix="../")
    with pytest.raises(ConfigError, match="'..' as a folder name"):
        DestinationAddress(name="dst", kind="local", path="/srv/../bucket")
