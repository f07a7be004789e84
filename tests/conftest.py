"""Session-wide test bed: real NFS, SMB and OSS-compatible servers on 127.0.0.1.

Each server starts the first time a test asks for it and stops when the session ends.
They export sub-folders of one session folder; a test makes its own sub-folder in there
and points an address at it, so tests never see each other's files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Airflow reads its configuration on first import: point it at a throw-away home with our
# dags folder before any test module imports it. Removed when the session ends
# (pytest_unconfigure).
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="sharelift-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["SHARELIFT_WORK_DIR"] = os.path.join(_AIRFLOW_HOME, "sharelift")


@pytest.fixture(scope="session")
def testbed_root() -> Iterator[Path]:
    """A folder every server's user can traverse (0755), unlike pytest's 0700 tmp dirs."""
    root = Path(tempfile.mkdtemp(prefix="sharelift-tests-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _folder(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def nfs_server(testbed_root: Path):  # type: ignore[no-untyped-def]
    from tests.servers.nfs import NfsServer

    server = NfsServer(_folder(testbed_root, "nfs-export"), _folder(testbed_root, "nfs-work"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smb_server(testbed_root: Path):  # type: ignore[no-untyped-def]
    from tests.servers.smb import SmbServer

    server = SmbServer(_folder(testbed_root, "smb-share"), _folder(testbed_root, "smb-work"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def oss_server(testbed_root: Path):  # type: ignore[no-untyped-def]
    from sharelift.local.ossd import OssServer

    server = OssServer(_folder(testbed_root, "ossd-data"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A short name unique to this test, usable as a folder name or bucket suffix."""
    import hashlib

    return "t" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]


def pytest_configure(config: pytest.Config) -> None:
    # Library debug logs (oss2 logs request headers) stay out of test output.
    import logging

    for name in ("oss2", "smbprotocol", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("SHARELIFT_TESTS", "1")


def pytest_unconfigure(config: pytest.Config) -> None:
    # Every server and Airflow process the session started has stopped by now.
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
