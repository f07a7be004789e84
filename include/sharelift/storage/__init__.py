"""Storage backends behind one interface (see ``base``) and the factories that pick one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sharelift.storage.base import (
    Destination,
    Entry,
    EntryKind,
    Fingerprint,
    IncompleteUpload,
    ObjectInfo,
    PutResult,
    Source,
    SourceFeatures,
    TransferConfig,
)
from sharelift.storage.retrying import RetryPolicy

if TYPE_CHECKING:
    from sharelift.addresses import DestinationAddress, SourceAddress

__all__ = [
    "Destination",
    "Entry",
    "EntryKind",
    "Fingerprint",
    "IncompleteUpload",
    "ObjectInfo",
    "PutResult",
    "RetryPolicy",
    "Source",
    "SourceFeatures",
    "TransferConfig",
    "open_destination",
    "open_source",
]


def open_source(address: SourceAddress) -> Source:
    """The backend for ``address``. Client libraries are imported only when needed."""
    if address.protocol == "local":
        from sharelift.storage.local_source import LocalSource

        return LocalSource(address)
    if address.protocol == "nfs":
        from sharelift.storage.nfs_source import NfsSource

        return NfsSource(address)
    if address.protocol == "smb":
        from sharelift.storage.smb_source import SmbSource

        return SmbSource(address)
    if address.protocol == "synthetic":
        from sharelift.storage.synthetic_source import SyntheticSource

        return SyntheticSource(address)
    raise ValueError(f"unknown source protocol {address.protocol!r}")


def open_destination(address: DestinationAddress, **kwargs: Any) -> Destination:
    if address.kind == "local":
        from sharelift.storage.local_destination import LocalDestination

        return LocalDestination(address, **kwargs)
    if address.kind == "oss":
        from sharelift.storage.oss_destination import OssDestination

        return OssDestination(address, **kwargs)
    raise ValueError(f"unknown destination kind {address.kind!r}")
