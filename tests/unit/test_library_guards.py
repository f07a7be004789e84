"""The backends that reach below a client library's public API refuse a version they were
not written against, with a message naming what they support, what they found and what to
do, before any call that could misbehave."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sharelift.addresses import SourceAddress
from sharelift.errors import UnsupportedLibraryError
from sharelift.storage import nfs_source, smb_source

NFS = SourceAddress(name="nfs-src", protocol="nfs", host="127.0.0.1", share="/export")
SMB = SourceAddress(
    name="smb-src", protocol="smb", host="127.0.0.1", share="data", username="u", password="p"
)


@pytest.fixture
def fresh_libnfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the libnfs found so far, so the next connection looks for it again."""
    monkeypatch.setattr(nfs_source, "_c_libnfs", None)


@pytest.fixture
def fresh_smb_check() -> Iterator[None]:
    smb_source.require_supported_smbprotocol.cache_clear()
    yield
    smb_source.require_supported_smbprotocol.cache_clear()


def test_the_installed_libnfs_is_the_abi_the_nfs_source_declares(fresh_libnfs: None) -> None:
    assert nfs_source._clib() is not None


def test_a_libnfs_of_another_abi_is_refused_at_connect_naming_both_and_the_remedy(
    fresh_libnfs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nfs_source, "libnfs_abi", lambda path: "libnfs.so.16")
    with pytest.raises(UnsupportedLibraryError) as caught:
        nfs_source.NfsSource(NFS).stat("a.txt")
    message = str(caught.value)
    assert "libnfs 4.0 (libnfs.so.13)" in message
    assert "found libnfs.so.16" in message
    assert "install libnfs 4.0" in message


def test_a_libnfs_linked_into_the_binding_is_not_judged_by_its_file_name() -> None:
    assert nfs_source.libnfs_abi("/x/_libnfs.cpython-311-x86_64-linux-gnu.so") is None
    assert nfs_source.libnfs_abi("/usr/lib/x86_64-linux-gnu/libnfs.so.13.0.0") == "libnfs.so.13"


def test_the_installed_smbprotocol_is_supported(fresh_smb_check: None) -> None:
    smb_source.require_supported_smbprotocol()


def test_an_unsupported_smbprotocol_is_refused_at_connect_naming_both_and_the_remedy(
    fresh_smb_check: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smb_source, "installed_smbprotocol", lambda: "2.1.0")
    with pytest.raises(UnsupportedLibraryError) as caught:
        smb_source.SmbSource(SMB).check()
    message = str(caught.value)
    assert "smbprotocol >= 1.13, < 2.0" in message
    assert "found smbprotocol 2.1.0" in message
    assert "pip install 'smbprotocol>=1.13,<2'" in message


def test_smbclient_internals_that_moved_are_named(
    fresh_smb_check: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import smbclient._pool

    monkeypatch.delattr(smbclient._pool, "register_session")
    with pytest.raises(UnsupportedLibraryError) as caught:
        smb_source.SmbSource(SMB).walk().__next__()
    assert "without register_session" in str(caught.value)


def test_smbprotocol_internals_the_fast_read_path_drives_are_named_when_they_moved(
    fresh_smb_check: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smbprotocol.connection import Connection

    monkeypatch.delattr(Connection, "_process_message_thread")
    with pytest.raises(UnsupportedLibraryError) as caught:
        smb_source.SmbSource(SMB).open("a.txt")
    assert "without _process_message_thread" in str(caught.value)
