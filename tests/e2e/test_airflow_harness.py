"""The Airflow harness itself: a real api-server, scheduler, dag-processor and triggerer.

One server for the module, on the probe DAGs in ``dags_fixture/``. The last test stops it
and checks that nothing it started is left running.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from sharelift.local.airflow import AirflowApiError, AirflowServer, parse_time

pytestmark = pytest.mark.e2e

DAGS = Path(__file__).parent / "dags_fixture"
PROBE = "sharelift_harness_probe"
TRIVIAL = "sharelift_harness_trivial"
PROBE_POOL = "sharelift_probe_pool"


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    server = AirflowServer(tmp_path_factory.mktemp("airflow"), DAGS)
    server.start()
    print(f"airflow healthy after {server.healthy_after:.1f} s at {server.base_url}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def probe_run(airflow: AirflowServer) -> dict[str, Any]:
    """One pool-limited run of the probe DAG: 6 mapped ``work`` instances in 2 slots."""
    airflow.wait_for_dag(PROBE, timeout=120)
    airflow.create_pool(PROBE_POOL, 1, "made by the harness test")
    pool = airflow.create_pool(PROBE_POOL, 2, "made by the harness test")  # exists: PATCH
    assert pool["slots"] == 2
    airflow.unpause(PROBE)
    marker = uuid.uuid4().hex[:12]
    run_id = f"harness-{marker}"
    assert airflow.trigger(PROBE, {"count": 6, "sleep": 2.0, "marker": marker}, run_id) == run_id
    state = airflow.wait_for_run(PROBE, run_id, timeout=150)
    return {
        "run_id": run_id,
        "marker": marker,
        "state": state,
        "tis": airflow.task_instances(PROBE, run_id),
    }


def test_probe_dags_are_parsed_and_components_healthy(airflow: AirflowServer) -> None:
    health = airflow.health()
    for component in ("metadatabase", "scheduler", "dag_processor", "triggerer"):
        assert health[component]["status"] == "healthy", health
    dag = airflow.wait_for_dag(PROBE, timeout=120)
    assert dag["dag_id"] == PROBE
    assert dag["is_paused"] is True  # paused at creation: nothing runs on its own
    assert airflow.wait_for_dag(TRIVIAL, timeout=60)["dag_id"] == TRIVIAL
    assert airflow.import_errors() == []
    airflow._token = "not-a-jwt"  # a rejected token (403 "Invalid JWT token") is renewed
    assert airflow.api("GET", f"/api/v2/dags/{PROBE}")["dag_id"] == PROBE


def test_missing_dag_reports_clearly(airflow: AirflowServer) -> None:
    with pytest.raises(Exception, match="was not parsed within"):
        airflow.wait_for_dag("sharelift_no_such_dag", timeout=1)


def test_pool_limits_mapped_instances(probe_run: dict[str, Any]) -> None:
    assert probe_run["state"] == "success"
    tis = probe_run["tis"]
    work = sorted((t for t in tis if t["task_id"] == "work"), key=lambda t: t["map_index"])
    assert [t["map_index"] for t in work] == list(range(6))
    assert all(t["state"] == "success" for t in work), work
    assert {t["task_id"] for t in tis} == {"plan", "work", "summarize"}
    intervals = AirflowServer.intervals(tis, "work")
    assert len(intervals) == 6
    # The pool lets exactly 2 run together: never more, and really 2 at once (2 s tasks).
    assert AirflowServer.max_overlap(intervals) == 2
    starts = sorted(start for start, _ in intervals)
    gaps = [round((b - a).total_seconds(), 2) for a, b in zip(starts, starts[1:], strict=False)]
    print(f"mapped starts, seconds apart: {gaps}")


def test_task_logs_are_readable(airflow: AirflowServer, probe_run: dict[str, Any]) -> None:
    log = airflow.task_log(PROBE, probe_run["run_id"], "summarize")
    assert f"probe marker={probe_run['marker']} items=6 total=55" in log
    mapped = airflow.task_log(PROBE, probe_run["run_id"], "work", map_index=3)
    assert "Returned value was: 9" in mapped


def test_invalid_params_are_rejected_at_trigger(airflow: AirflowServer) -> None:
    airflow.wait_for_dag(PROBE, timeout=120)
    with pytest.raises(AirflowApiError) as err:
        airflow.trigger(PROBE, {"count": "many"})
    assert err.value.status_code == 400
    assert "count" in err.value.body


def test_trivial_run_round_trip(airflow: AirflowServer) -> None:
    airflow.wait_for_dag(TRIVIAL, timeout=120)
    airflow.unpause(TRIVIAL)
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        run_id = airflow.trigger(TRIVIAL, {})
        assert airflow.wait_for_run(TRIVIAL, run_id, timeout=60, poll=0.1) == "success"
        times.append(round(time.monotonic() - t0, 2))
    print(f"trigger -> success of a one-task DAG: {times} s")
    assert min(times) < 30


def test_connections_variables_and_cli_env(airflow: AirflowServer) -> None:
    airflow.set_connection("sharelift_probe_conn", "generic", host="first", extra={"a": 1})
    airflow.set_connection(
        "sharelift_probe_conn", "generic", host="second", login="u", password="p", port=2049
    )
    conn = airflow.api("GET", "/api/v2/connections/sharelift_probe_conn")
    assert (conn["host"], conn["login"], conn["port"]) == ("second", "u", 2049)
    airflow.set_variable("sharelift_probe_var", "one")
    airflow.set_variable("sharelift_probe_var", {"two": 2})  # exists: PATCH, JSON-encoded
    # The same home through the airflow CLI, with the harness's environment.
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "variables", "get", "sharelift_probe_var"],
        env=airflow.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"two": 2}


def test_max_overlap() -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)

    def s(n: float) -> datetime:
        return t + timedelta(seconds=n)

    assert AirflowServer.max_overlap([]) == 0
    assert AirflowServer.max_overlap([(s(0), s(1)), (s(1), s(2))]) == 1  # touching
    assert AirflowServer.max_overlap([(s(0), s(3)), (s(1), s(2)), (s(1.5), s(4))]) == 3
    assert AirflowServer.max_overlap([(s(0), None), (s(5), s(6))]) == 2  # still running
    assert parse_time("2024-01-01T00:00:01Z") == s(1)


def test_stop_leaves_nothing_behind(airflow: AirflowServer) -> None:
    port = airflow.port
    airflow.stop()
    print(f"stop: {airflow.stop_report}")
    airflow.stop()  # idempotent
    home = str(airflow.home)
    left = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(home in part for part in proc.info["cmdline"] or []) or (
                proc.environ().get("AIRFLOW_HOME", "").startswith(home)
            ):
                left.append((proc.pid, proc.info["cmdline"]))
        except (psutil.Error, OSError):
            pass
    assert left == []
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
