"""A migration through a running Airflow (scheduler + api-server, LocalExecutor).

``dag.test()`` ignores pools, so this is where "at most 20 copy tasks of a run at once"
is proven: 32 small subtasks in the copy tasks of a 20-slot pool, task-instance start/end
times, maximum overlap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sharelift.checksum import crc64

# The folder's Airflow (conftest.py) starts in the setup of the first test that asks for
# it, and pytest-timeout counts setup: on a loaded machine that start alone takes minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DAG_ID = "sharelift_migrate"


@pytest.fixture(scope="module")
def airflow(sharelift_airflow):  # type: ignore[no-untyped-def]
    """The folder's Airflow (``conftest.py``), with the migration DAG parsed and unpaused."""
    sharelift_airflow.wait_for_dag(DAG_ID, timeout=180)
    sharelift_airflow.unpause(DAG_ID)
    return sharelift_airflow


@pytest.fixture(scope="module")
def share(testbed_root: Path) -> tuple[Path, dict[str, bytes]]:
    root = testbed_root / "e2e-share"
    files: dict[str, bytes] = {}
    for i in range(640):
        rel = f"folder {i % 16:02d}/file #{i:04d}.bin"
        files[rel] = os.urandom(1000 + i)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(files[rel])
    return root, files


def connect(airflow: Any, oss_server: Any, root: Path, bucket: str) -> None:
    oss_server.create_bucket(bucket)
    airflow.set_connection("e2e_src", "sharelift_local", extra={"path": str(root)})
    airflow.set_connection("e2e_dst", **oss_server.connection_fields(bucket))


def test_thirty_two_small_subtasks_share_twenty_copy_tasks_at_most_twenty_at_once(
    airflow,
    oss_server,
    share,  # type: ignore[no-untyped-def]
) -> None:
    from sharelift.local.airflow import AirflowServer
    from sharelift.storage import open_destination

    root, files = share
    connect(airflow, oss_server, root, "e2e-pool")
    run_id = airflow.trigger(
        DAG_ID,
        {
            "job_name": "e2e-pool",
            "source_conn_id": "e2e_src",
            "destination_conn_id": "e2e_dst",
            "destination_prefix": "e2e/",
            "subtask_file_count": 20,
        },
    )
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=900) == "success"
    # airflow-setup recorded the pool's size where the run's plan task reads it
    variable = airflow.api("GET", "/api/v2/variables/sharelift_copy_pool_slots")
    assert variable["value"] == "20"
    tis = airflow.task_instances(DAG_ID, run_id)
    copies = [ti for ti in tis if ti["task_id"] == "copy"]
    assert len(copies) == 20  # 640 files are too little work for more tasks than slots
    assert all(ti["state"] == "success" for ti in copies)
    intervals = airflow.intervals(tis, "copy")
    overlap = AirflowServer.max_overlap(intervals)
    print(f"copy instances: {len(intervals)}, maximum overlap: {overlap}")
    assert 1 <= overlap <= 20
    with open_destination(oss_server.destination_address(bucket="e2e-pool", prefix="e2e/")) as dest:
        for rel in list(files)[::37]:
            info = dest.head(rel)
            assert info is not None and info.crc64 == crc64(files[rel])
        assert sum(1 for _ in dest.list()) == len(files)


def test_a_bad_job_name_is_refused_at_trigger_naming_the_field(airflow) -> None:  # type: ignore[no-untyped-def]
    from sharelift.local.airflow import AirflowApiError

    with pytest.raises(AirflowApiError) as info:
        airflow.trigger(
            DAG_ID,
            {"job_name": "Bad_Name", "source_conn_id": "e2e_src", "destination_conn_id": "e2e_dst"},
        )
    assert info.value.status_code == 400
    assert "job_name" in str(info.value)


def test_a_prefix_starting_with_a_slash_is_refused_at_trigger(airflow) -> None:  # type: ignore[no-untyped-def]
    from sharelift.local.airflow import AirflowApiError

    with pytest.raises(AirflowApiError) as info:
        airflow.trigger(
            DAG_ID,
            {
                "job_name": "good-name",
                "source_conn_id": "e2e_src",
                "destination_conn_id": "e2e_dst",
                "destination_prefix": "/x/",
            },
        )
    assert "destination_prefix" in str(info.value)


def test_connection_test_of_an_smb_address_says_normal_or_names_the_cause(
    airflow, smb_server
) -> None:  # type: ignore[no-untyped-def]
    body = {
        "connection_id": "e2e_smb",
        "conn_type": "sharelift_smb",
        "host": smb_server.host,
        "port": smb_server.port,
        "schema": smb_server.share,
        "login": smb_server.username,
        "password": smb_server.password.reveal(),
    }
    good = airflow.api("POST", "/api/v2/connections/test", json=body)
    assert good["status"] is True, good
    assert good["message"].startswith("Normal")
    wrong = "Wrong-Password-123"
    bad = airflow.api("POST", "/api/v2/connections/test", json={**body, "password": wrong})
    assert bad["status"] is False
    assert "password" in bad["message"].lower() and wrong not in bad["message"]


def test_connection_test_of_an_nfs_address_names_a_missing_export(airflow, nfs_server) -> None:  # type: ignore[no-untyped-def]
    body = {
        "connection_id": "e2e_nfs",
        "conn_type": "sharelift_nfs",
        "host": nfs_server.host,
        "port": nfs_server.nfs_port,
        "schema": "/no-such-export",
        "extra": json.dumps({"mount_port": nfs_server.mount_port}),
    }
    bad = airflow.api("POST", "/api/v2/connections/test", json=body)
    assert bad["status"] is False
    assert "/no-such-export" in bad["message"]
    good = airflow.api(
        "POST", "/api/v2/connections/test", json={**body, "schema": nfs_server.export_path}
    )
    assert good["status"] is True, good


def test_a_failed_run_is_retried_from_the_cli_with_exactly_its_error_list(
    airflow,
    oss_server,
    smb_server,  # type: ignore[no-untyped-def]
) -> None:
    from sharelift.engine.report import report_folder
    from sharelift.storage import open_destination

    root = Path(smb_server.share_dir) / "e2e-retry"
    root.mkdir(mode=0o755)
    for i in range(5):
        (root / f"f{i}.txt").write_bytes(b"x" * (i + 1))
        (root / f"f{i}.txt").chmod(0o644)
    (root / "f3.txt").chmod(0o000)
    oss_server.create_bucket("e2e-retry")
    airflow.set_connection(
        "e2e_smb_src",
        "sharelift_smb",
        host=smb_server.host,
        port=smb_server.port,
        schema=smb_server.share,
        login=smb_server.username,
        password=smb_server.password.reveal(),
        extra={"path": "e2e-retry"},
    )
    airflow.set_connection("e2e_retry_dst", **oss_server.connection_fields("e2e-retry"))
    first = airflow.trigger(
        DAG_ID,
        {
            "job_name": "e2e-retry",
            "source_conn_id": "e2e_smb_src",
            "destination_conn_id": "e2e_retry_dst",
        },
    )
    assert airflow.wait_for_run(DAG_ID, first, timeout=300) == "failed"
    (root / "f3.txt").chmod(0o644)
    before = {
        r["dag_run_id"] for r in airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]
    }
    subprocess.run(
        [sys.executable, "-m", "sharelift.cli", "retry", "e2e-retry", first],
        env=airflow.env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    after = {
        r["dag_run_id"] for r in airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]
    }
    (retry_run,) = after - before
    assert airflow.wait_for_run(DAG_ID, retry_run, timeout=300) == "success"
    with open_destination(oss_server.destination_address(bucket="e2e-retry")) as dest:
        f = dest.open(report_folder("e2e-retry", retry_run) + "e2e-retry_completed_list.txt")
        lines = f.read().decode().splitlines()
        f.close()
    assert [line.split("\t")[0] for line in lines] == ["f3.txt"]


def test_the_sharelift_ui_page_lists_runs_with_states_and_serves_the_lists(airflow) -> None:  # type: ignore[no-untyped-def]
    import requests

    runs = airflow.api("GET", "/sharelift/api/runs")
    pool_run = next(r for r in runs if r["job"] == "e2e-pool")
    assert pool_run["state"] == "Completed"
    assert pool_run["copied"] == 640
    page = airflow.request("GET", "/sharelift/")
    assert page.status_code == 200 and "e2e-pool" in page.text and "Create Failed" in page.text
    listing = airflow.request(
        "GET", f"/sharelift/runs/e2e-pool/{pool_run['run_id']}/completed_list.txt"
    )
    assert len(listing.text.splitlines()) == 640
    base = f"/sharelift/runs/e2e-pool/{pool_run['run_id']}"
    assert len(airflow.request("GET", f"{base}/total_list.txt").text.splitlines()) == 640
    assert airflow.request("GET", f"{base}/error_list.txt").text == ""
    unknown = airflow.request("GET", f"{base}/skipped_list.txt")
    assert unknown.status_code == 404 and "total_list.txt" in unknown.text
    anonymous = requests.get(f"{airflow.base_url}/sharelift/api/runs", timeout=10)
    assert anonymous.status_code in (401, 403)


def test_the_plugin_gives_airflow_the_listener_that_preloads_the_task_modules(airflow) -> None:  # type: ignore[no-untyped-def]
    plugins = airflow.api("GET", "/api/v2/plugins")["plugins"]
    sharelift = next(p for p in plugins if p["name"] == "sharelift")
    assert any("sharelift.airflow.preload" in str(listener) for listener in sharelift["listeners"])


def test_flow_control_is_set_and_refused_through_the_ui_api(airflow) -> None:  # type: ignore[no-untyped-def]
    from sharelift.local.airflow import AirflowApiError

    shown = airflow.api(
        "PUT",
        "/sharelift/api/flow-control/e2e-pool",
        json={"setting": "00:00-24:00=5", "timezone": "UTC"},
    )
    assert (shown["setting"], shown["limit_now_mb_per_s"]) == ("00:00-24:00=5", 5.0)
    with pytest.raises(AirflowApiError) as info:
        airflow.api(
            "PUT",
            "/sharelift/api/flow-control/e2e-pool",
            json={"setting": "08:00-18:00=10,17:00-20:00=5"},
        )
    assert info.value.status_code == 400 and "overlap" in str(info.value)
    assert airflow.api("GET", "/sharelift/api/flow-control/e2e-pool")["setting"] == "00:00-24:00=5"
    cleared = airflow.api("PUT", "/sharelift/api/flow-control/e2e-pool", json={"setting": None})
    assert cleared["setting"] is None
