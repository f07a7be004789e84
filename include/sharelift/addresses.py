"""Data addresses: named, validated, reusable endpoints (docs/addresses.md).

An address is plain data: it says where a source or destination is and how to log in.
``sharelift.storage.open_source``/``open_destination`` turn it into a backend. Validation happens when the
address is built, so a bad address never reaches a server; reachability is checked by the
backend's ``check()``. Secrets are ``Secret`` objects: the repr of an address is safe to log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from sharelift.errors import ConfigError
from sharelift.path_rules import check_folder_name, check_path
from sharelift.secret import Secret

ADDRESS_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{3,63}$")
SourceProtocol = Literal["local", "nfs", "smb", "synthetic"]
DestinationKind = Literal["oss", "local"]


def validate_address_name(name: str, field_name: str = "name") -> str:
    if not isinstance(name, str) or not ADDRESS_NAME_RE.match(name):
        raise ConfigError(
            field_name,
            f"must be 3-63 characters of letters, digits, '-' and '_' (got {name!r})",
        )
    return name


def validate_prefix(prefix: str | None, field_name: str = "prefix") -> str:
    """Optional; must not start with '/' and must end with '/'; empty = bucket root.
    And no '..', '.' or empty folder names (the one path rule, ``sharelift.path_rules``)."""
    return check_path(prefix, field_name, "prefix")


def _validate_host(host: str, field_name: str = "host") -> str:
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise ConfigError(field_name, f"must be a host name or IP address (got {host!r})")
    return host


def _validate_port(port: int | None, field_name: str) -> int | None:
    if port is None:
        return None
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(field_name, f"must be a TCP port 1-65535 (got {port!r})")
    return port


@dataclass(frozen=True)
class SourceAddress:
    """A file share to read from.

    * ``local``: ``path`` is a folder on this machine (or an already-mounted share).
    * ``nfs``: ``host``, ``share`` = the export path (e.g. ``/exports/data``); optional
      ``port`` (NFS) and ``mount_port`` to skip the portmapper; ``path`` = sub-folder.
    * ``smb``: ``host``, ``share`` = the share name; ``username``/``password``;
      optional ``port`` (default 445) and ``domain``; ``path`` = sub-folder.
    * ``synthetic``: ``share`` = how many files a generated listing holds (benchmarks and
      tests of very large jobs: no files anywhere, ``sharelift.storage.synthetic_source``).
    """

    name: str
    protocol: SourceProtocol
    host: str = ""
    share: str = ""
    path: str = ""
    port: int | None = None
    mount_port: int | None = None
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    domain: str = ""
    nfs_version: int = 3
    nfs_uid: int | None = None
    nfs_gid: int | None = None

    def __post_init__(self) -> None:
        validate_address_name(self.name)
        if isinstance(self.password, str):
            object.__setattr__(self, "password", Secret(self.password))
        if self.protocol not in ("local", "nfs", "smb", "synthetic"):
            raise ConfigError(
                "protocol", f"must be one of local, nfs, smb, synthetic (got {self.protocol!r})"
            )
        _validate_port(self.port, "port")
        _validate_port(self.mount_port, "mount_port")
        if self.protocol == "local":
            if not self.path:
                raise ConfigError("path", "a local source needs an absolute folder path")
            object.__setattr__(self, "path", check_path(self.path, "path", "absolute"))
            return
        if self.protocol == "synthetic":
            if not self.share.isdigit() or int(self.share) < 1:
                raise ConfigError(
                    "share", f"a synthetic source needs a file count like 1000 (got {self.share!r})"
                )
            return
        _validate_host(self.host)
        # Every path field follows the one path rule: no '..', '.' or empty folder names.
        object.__setattr__(self, "path", check_path(self.path, "path", "relative"))
        if self.protocol == "nfs":
            if not self.share:
                raise ConfigError("share", "an NFS export path like /exports/data is required")
            object.__setattr__(self, "share", check_path(self.share, "share", "absolute"))
            if self.nfs_version not in (3, 4):
                raise ConfigError("nfs_version", f"must be 3 or 4 (got {self.nfs_version!r})")
        if self.protocol == "smb":
            share = self.share.strip("/\\")
            if not share or "/" in share or "\\" in share:
                raise ConfigError(
                    "share", f"must be one SMB share name, like 'data' (got {self.share!r})"
                )
            object.__setattr__(self, "share", check_folder_name(share, "share"))

    def display_url(self) -> str:
        """Where the files are, for reports: no credentials, ever."""
        if self.protocol == "local":
            return f"file://{self.path.rstrip('/')}"
        if self.protocol == "synthetic":
            return f"synthetic:///{self.share}"
        share = self.share.strip("/")
        sub = f"/{self.path.strip('/')}" if self.path.strip("/") else ""
        return f"{self.protocol}://{self.host}/{share}{sub}"


@dataclass(frozen=True)
class DestinationAddress:
    """Where objects go.

    * ``oss``: ``endpoint`` (a region endpoint or any OSS-compatible URL), ``bucket``,
      ``access_key_id``/``access_key_secret``, optional ``prefix`` and ``region``
      (needed for V4 signing).
    * ``local``: ``path`` is a folder that plays the bucket; ``prefix`` works the same.
    """

    name: str
    kind: DestinationKind
    endpoint: str = ""
    bucket: str = ""
    access_key_id: str = ""
    access_key_secret: Secret = field(default_factory=lambda: Secret(""))
    prefix: str = ""
    region: str = ""
    path: str = ""
    signature_version: Literal["v1", "v4"] = "v4"

    def __post_init__(self) -> None:
        validate_address_name(self.name)
        if isinstance(self.access_key_secret, str):
            object.__setattr__(self, "access_key_secret", Secret(self.access_key_secret))
        if self.kind not in ("oss", "local"):
            raise ConfigError("kind", f"must be oss or local (got {self.kind!r})")
        validate_prefix(self.prefix)
        if self.kind == "local":
            if not self.path:
                raise ConfigError("path", "a local destination needs an absolute folder path")
            object.__setattr__(self, "path", check_path(self.path, "path", "absolute"))
            return
        if not self.endpoint:
            raise ConfigError("endpoint", "is required for an OSS destination")
        if not re.match(r"^(https?://)?[A-Za-z0-9.-]+(:\d+)?/?$", self.endpoint):
            raise ConfigError(
                "endpoint",
                f"must be a host or URL like https://oss-cn-hangzhou.aliyuncs.com (got {self.endpoint!r})",
            )
        if not re.match(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", self.bucket or ""):
            raise ConfigError(
                "bucket",
                f"must be 3-63 lowercase letters, digits and '-', not starting or ending with '-' (got {self.bucket!r})",
            )
        if not self.access_key_id:
            raise ConfigError("access_key_id", "is required for an OSS destination")
        if not self.access_key_secret:
            raise ConfigError("access_key_secret", "is required for an OSS destination")
        if self.signature_version not in ("v1", "v4"):
            raise ConfigError(
                "signature_version", f"must be v1 or v4 (got {self.signature_version!r})"
            )
        if self.signature_version == "v4" and not self.region:
            object.__setattr__(self, "region", _region_from_endpoint(self.endpoint))

    def display_url(self) -> str:
        if self.kind == "local":
            return f"file://{self.path.rstrip('/')}/{self.prefix}"
        return f"oss://{self.bucket}/{self.prefix}"


def _region_from_endpoint(endpoint: str) -> str:
    """'oss-cn-hangzhou.aliyuncs.com' -> 'cn-hangzhou'; other hosts -> 'cn-hangzhou'.

    OSS-compatible servers that check V4 signatures accept the region the client signs with,
    so any fixed value works for them; real OSS needs the endpoint's region.
    """
    m = re.search(r"oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com", endpoint)
    return m.group(1) if m else "cn-hangzhou"
