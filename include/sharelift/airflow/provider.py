"""Provider metadata: how Airflow discovers sharelift's connection types and hooks."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    from sharelift import __version__

    return {
        "package-name": "sharelift",
        "name": "sharelift",
        "description": "Migrate NFS exports and SMB shares into Alibaba Cloud OSS.",
        "versions": [__version__],
        "connection-types": [
            {
                "hook-class-name": "sharelift.airflow.hooks.NfsHook",
                "connection-type": "sharelift_nfs",
            },
            {
                "hook-class-name": "sharelift.airflow.hooks.SmbHook",
                "connection-type": "sharelift_smb",
            },
            {
                "hook-class-name": "sharelift.airflow.hooks.LocalFolderHook",
                "connection-type": "sharelift_local",
            },
            {
                "hook-class-name": "sharelift.airflow.hooks.DestinationHook",
                "connection-type": "sharelift_local_bucket",
            },
        ],
    }
