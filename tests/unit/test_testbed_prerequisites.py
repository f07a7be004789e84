"""The test bed names the Debian package of a missing program or module, before it starts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.servers import TestbedError, prerequisites
from tests.servers.prerequisites import MissingPrerequisite, Prerequisite
from tests.servers.smb import SmbServer

REPO = Path(__file__).resolve().parents[2]


def _install_sh_packages() -> set[str]:
    text = (REPO / "scripts" / "install.sh").read_text()
    block = re.search(r"DEBIAN_PACKAGES=\((.*?)\n\)", text, re.S)
    assert block is not None, "scripts/install.sh lost its DEBIAN_PACKAGES=( ... ) list"
    words = []
    for line in block.group(1).splitlines():
        words += line.split("#", 1)[0].split()
    return set(words)


def test_a_missing_module_is_an_error_naming_its_debian_package(tmp_path: Path) -> None:
    table = {
        "vfs:catia": Prerequisite(
            "smbd cannot load vfs module catia",
            "samba-vfs-modules",
            paths=(str(tmp_path / "samba" / "vfs" / "catia.so"),),
        )
    }
    with pytest.raises(MissingPrerequisite) as caught:
        prerequisites.require("vfs:catia", table)
    assert str(caught.value) == (
        f"smbd cannot load vfs module catia: {tmp_path}/samba/vfs/catia.so is missing; "
        "install the Debian package samba-vfs-modules (scripts/install.sh)"
    )
    assert caught.value.package == "samba-vfs-modules"
    assert isinstance(caught.value, TestbedError)


def test_a_missing_program_is_an_error_naming_its_debian_package() -> None:
    table = {"smbd": Prerequisite("Samba's smbd is not installed", "samba", program="no-such-smbd")}
    with pytest.raises(MissingPrerequisite, match=r"install the Debian package samba \("):
        prerequisites.require("smbd", table)


def test_an_installed_file_is_found_and_the_highest_version_wins(tmp_path: Path) -> None:
    for version in ("9.6", "15", "13"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "initdb").touch()
    table = {"initdb": Prerequisite("x", "postgresql", paths=(f"{tmp_path}/*/bin/initdb",))}
    assert prerequisites.require("initdb", table) == f"{tmp_path}/15/bin/initdb"


def test_smb_server_refuses_to_start_without_a_vfs_module_it_configures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = Prerequisite(
        "smbd cannot load vfs module catia",
        "samba-vfs-modules",
        paths=(str(tmp_path / "catia.so"),),
    )
    monkeypatch.setitem(prerequisites.PREREQUISITES, "vfs:catia", missing)
    for program in ("smbd", "smbpasswd"):  # installed, as far as this test is concerned
        (tmp_path / program).touch()
        present = Prerequisite(program, "samba", paths=(str(tmp_path / program),))
        monkeypatch.setitem(prerequisites.PREREQUISITES, program, present)
    server = SmbServer(tmp_path, tmp_path / "work", map_illegal_names=True)
    with pytest.raises(MissingPrerequisite, match="samba-vfs-modules"):
        server.start()
    assert not (tmp_path / "work").exists()  # nothing was set up, let alone launched


@pytest.mark.parametrize("map_illegal_names", [False, True])
def test_every_vfs_module_the_smb_server_configures_has_a_package(
    tmp_path: Path, map_illegal_names: bool
) -> None:
    server = SmbServer(tmp_path, tmp_path, map_illegal_names=map_illegal_names)
    server._write_conf()
    configured = re.findall(r"^\s*vfs objects = (.*)$", server.conf_path.read_text(), re.M)
    modules = configured[0].split() if configured else []
    assert modules == list(server.vfs_modules)
    for module in modules:
        assert prerequisites.PREREQUISITES[f"vfs:{module}"].package == "samba-vfs-modules"


def test_install_script_names_every_package_the_test_bed_needs() -> None:
    needed = {entry.package for entry in prerequisites.PREREQUISITES.values()}
    assert needed - _install_sh_packages() == set()
