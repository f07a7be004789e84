"""Turning an Airflow Connection into a sharelift address, with the precedence written down.

Precedence for every field: the connection's own field (host, port, login, password,
schema), then its ``extra`` JSON, then the default. Only the attributes of a Connection
are used (``conn_type``, ``host``, ``port``, ``login``, ``password``, ``schema``,
``extra_dejson``), so tests pass a plain object.

Connection types:

* ``sharelift_nfs``: host, port (NFS, optional), schema = export path; extra
  ``mount_port``, ``path`` (sub-folder), ``nfs_version`` (3 or 4), ``uid``, ``gid``.
* ``sharelift_smb`` (or the Samba provider's ``samba``): host, port (445), schema = share,
  login/password; extra ``domain``, ``path``.
* ``sharelift_local``: extra ``path`` (or host field) = an absolute folder.
* ``oss`` (the Alibaba provider's type): schema = bucket (or extra ``bucket``); extras
  ``auth_type`` = ``AK``, ``access_key_id``, ``access_key_secret``, ``region``,
  ``endpoint``; ours: ``prefix``, ``signature_version`` (v4 default, v1).
* ``sharelift_local_bucket``: a local folder playing a bucket (extra ``path``, ``prefix``).
"""

from __future__ import annotations

from typing import Any, Protocol

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.errors import ConfigError
from sharelift.path_rules import PathForm, check_path

SOURCE_TYPES = {
    "sharelift_nfs": "nfs",
    "sharelift_smb": "smb",
    "samba": "smb",
    "sharelift_local": "local",
}
DESTINATION_TYPES = {"oss": "oss", "sharelift_local_bucket": "local"}


class ConnectionLike(Protocol):
    conn_id: str
    conn_type: str | None
    host: str | None
    port: int | None
    login: str | None
    password: str | None
    schema: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


def _int(value: Any, field: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(field, f"must be an integer (got {value!r})") from None


def address_name(conn_id: str) -> str:
    """Connection ids allow '.' and longer names; address names are 3-63 of [A-Za-z0-9_-]."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in conn_id)[:63].ljust(3, "_")


def _path_field(conn: ConnectionLike, value: object, name: str, form: PathForm) -> str:
    """A path field of a connection, checked by the one path rule; the error names the
    connection and the field, so the operator knows which connection to edit."""
    return check_path(value, f"connection {conn.conn_id!r} {name}", form)


def source_address(conn: ConnectionLike, sub_path: str = "") -> SourceAddress:
    protocol = SOURCE_TYPES.get(conn.conn_type or "")
    if protocol is None:
        raise ConfigError(
            "source",
            f"connection {conn.conn_id!r} has type {conn.conn_type!r}; a source must be one of "
            + ", ".join(sorted(SOURCE_TYPES)),
        )
    extra = conn.extra_dejson or {}
    sub_path = check_path(sub_path, "source_path", "relative")
    name = address_name(conn.conn_id)
    if protocol == "local":
        if extra.get("path"):
            folder = _path_field(conn, extra["path"], "extra 'path'", "absolute")
        else:
            folder = _path_field(conn, conn.host or "", "host (the folder)", "absolute")
        if sub_path:
            folder = folder.rstrip("/") + "/" + sub_path
        return SourceAddress(name=name, protocol="local", path=folder)
    base_path = _path_field(conn, extra.get("path") or "", "extra 'path'", "relative")
    path = "/".join(p for p in (base_path, sub_path) if p)
    if protocol == "nfs":
        return SourceAddress(
            name=name,
            protocol="nfs",
            host=conn.host or "",
            share=_path_field(
                conn, conn.schema or extra.get("export") or "", "schema (export path)", "absolute"
            ),
            path=path,
            port=_int(conn.port, "port"),
            mount_port=_int(extra.get("mount_port"), "mount_port"),
            nfs_version=_int(extra.get("nfs_version"), "nfs_version") or 3,
            nfs_uid=_int(extra.get("uid"), "uid"),
            nfs_gid=_int(extra.get("gid"), "gid"),
        )
    return SourceAddress(
        name=name,
        protocol="smb",
        host=conn.host or "",
        share=conn.schema or str(extra.get("share") or ""),
        path=path,
        port=_int(conn.port, "port"),
        username=conn.login or "",
        password=conn.password or "",  # type: ignore[arg-type]  # wrapped in Secret on construction
        domain=str(extra.get("domain") or ""),
    )


def destination_address(conn: ConnectionLike, prefix: str | None = None) -> DestinationAddress:
    kind = DESTINATION_TYPES.get(conn.conn_type or "")
    if kind is None:
        raise ConfigError(
            "destination",
            f"connection {conn.conn_id!r} has type {conn.conn_type!r}; a destination must be one of "
            + ", ".join(sorted(DESTINATION_TYPES)),
        )
    extra = conn.extra_dejson or {}
    if prefix is not None:
        chosen_prefix = check_path(prefix, "destination_prefix", "prefix")
    else:
        chosen_prefix = _path_field(conn, extra.get("prefix") or "", "extra 'prefix'", "prefix")
    name = address_name(conn.conn_id)
    if kind == "local":
        if extra.get("path"):
            folder = _path_field(conn, extra["path"], "extra 'path'", "absolute")
        else:
            folder = _path_field(conn, conn.host or "", "host (the folder)", "absolute")
        return DestinationAddress(name=name, kind="local", path=folder, prefix=chosen_prefix)
    auth_type = extra.get("auth_type", "AK")
    if auth_type != "AK":
        raise ConfigError("auth_type", f"only 'AK' (AccessKey) is supported (got {auth_type!r})")
    region = str(extra.get("region") or "")
    endpoint = str(
        extra.get("endpoint") or conn.host or (f"oss-{region}.aliyuncs.com" if region else "")
    )
    return DestinationAddress(
        name=name,
        kind="oss",
        endpoint=endpoint,
        bucket=conn.schema or str(extra.get("bucket") or ""),
        access_key_id=str(extra.get("access_key_id") or conn.login or ""),
        access_key_secret=str(extra.get("access_key_secret") or conn.password or ""),  # type: ignore[arg-type]
        prefix=chosen_prefix,
        region=region,
        signature_version=str(extra.get("signature_version") or "v4"),  # type: ignore[arg-type]
    )
