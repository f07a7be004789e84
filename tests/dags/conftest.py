"""DAG tests run ``dag.test()`` against a fresh SQLite metadata database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """``airflow db migrate`` once per session (about 5 s), in the test Airflow home."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run(
        [str(airflow), "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=300,
    )


@pytest.fixture(scope="session")
def dagbag(airflow_db: None):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def point_it_src_at(
    request: pytest.FixtureRequest, backend: str, local_parent: Path, folder: str
) -> tuple[Path, str]:
    """A fresh folder ``folder`` on ``backend`` (local, NFS or SMB) and the connection
    ``it_src`` pointing at it; returns the folder on disk and its address's URL base."""
    from tests.dags.test_full_migration_local import set_connection

    if backend == "local":
        root = local_parent / folder
        root.mkdir(parents=True, mode=0o755)
        set_connection("it_src", conn_type="sharelift_local", extra={"path": str(root)})
        return root, f"file://{root}"
    if backend == "nfs":
        server = request.getfixturevalue("nfs_server")
        root = Path(server.export_dir) / folder
        root.mkdir(mode=0o755)
        set_connection(
            "it_src",
            conn_type="sharelift_nfs",
            host=server.host,
            port=server.nfs_port,
            schema=server.export_path,
            extra={"mount_port": server.mount_port, "path": folder},
        )
        return root, f"nfs://{server.host}/{server.export_path.strip('/')}/{folder}"
    server = request.getfixturevalue("smb_server")
    root = Path(server.share_dir) / folder
    root.mkdir(mode=0o755)
    set_connection(
        "it_src",
        conn_type="sharelift_smb",
        host=server.host,
        port=server.port,
        schema=server.share,
        login=server.username,
        password=server.password.reveal(),
        extra={"path": folder},
    )
    return root, f"smb://{server.host}/{server.share}/{folder}"
