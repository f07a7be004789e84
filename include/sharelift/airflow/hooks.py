"""Hooks for sharelift's connection types: each turns a Connection into a backend.

``test_connection`` runs the same ``check()`` a job runs first, so the UI's "Test"
button says exactly what a job would say (which address, which cause), without secrets.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.airflow import connections
from sharelift.errors import ShareliftError, scrub
from sharelift.storage import Destination, Source, open_destination, open_source


class _SourceHook(BaseHook):
    conn_name_attr = "conn_id"

    def __init__(self, conn_id: str, sub_path: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.sub_path = sub_path

    def address(self) -> SourceAddress:
        return connections.source_address(self.get_connection(self.conn_id), self.sub_path)

    def get_conn(self) -> Source:
        return open_source(self.address())

    def test_connection(self) -> tuple[bool, str]:
        try:
            with self.get_conn() as source:
                source.check()
        except ShareliftError as exc:
            return False, scrub(str(exc))
        return True, f"Normal: {self.address().display_url()} is reachable and readable"


class NfsHook(_SourceHook):
    """An NFS export (nfs-ganesha, kernel nfsd, NAS appliances) read through libnfs."""

    conn_type = "sharelift_nfs"
    default_conn_name = "sharelift_nfs_default"
    hook_name = "NFS export (sharelift)"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["login", "password"],
            "relabeling": {"schema": "Export path", "port": "NFS port (optional)"},
            "placeholders": {
                "host": "nfs-server.example.com",
                "schema": "/exports/data",
                "extra": '{"path": "sub/folder", "mount_port": 20048, "nfs_version": 3}',
            },
        }


class SmbHook(_SourceHook):
    """An SMB/CIFS share (Windows servers, Samba) read through smbprotocol."""

    conn_type = "sharelift_smb"
    default_conn_name = "sharelift_smb_default"
    hook_name = "SMB share (sharelift)"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Share name", "login": "Username", "port": "Port (445)"},
            "placeholders": {
                "host": "fileserver.example.com",
                "schema": "data",
                "extra": '{"path": "sub/folder", "domain": "EXAMPLE"}',
            },
        }


class LocalFolderHook(_SourceHook):
    """A folder on the workers' file system (already-mounted shares, tests, demos)."""

    conn_type = "sharelift_local"
    default_conn_name = "sharelift_local_default"
    hook_name = "Local folder (sharelift)"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["login", "password", "port", "schema"],
            "relabeling": {"host": "Folder path"},
            "placeholders": {"host": "/mnt/share"},
        }


class DestinationHook(BaseHook):
    """An OSS bucket (the Alibaba provider's ``oss`` connection) or a local bucket folder."""

    conn_name_attr = "conn_id"
    conn_type = "sharelift_local_bucket"
    default_conn_name = "sharelift_local_bucket_default"
    hook_name = "Local folder as bucket (sharelift)"

    def __init__(self, conn_id: str, prefix: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.prefix = prefix

    def address(self) -> DestinationAddress:
        return connections.destination_address(self.get_connection(self.conn_id), self.prefix)

    def get_conn(self, **kwargs: Any) -> Destination:
        return open_destination(self.address(), **kwargs)

    def test_connection(self) -> tuple[bool, str]:
        try:
            with self.get_conn() as dest:
                dest.check()
        except ShareliftError as exc:
            return False, scrub(str(exc))
        return True, f"Normal: {self.address().display_url()} is reachable"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["login", "password", "port", "schema"],
            "relabeling": {"host": "Folder path"},
            "placeholders": {"host": "/data/bucket", "extra": '{"prefix": "data/to/oss/"}'},
        }
