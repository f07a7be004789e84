"""One Airflow (LocalExecutor) on the project's own DAGs and plugins for the e2e modules
that drive sharelift through it, started once for this folder.

Starting Airflow costs a minute or more on a loaded machine, and nothing these modules
prove depends on a fresh one: each uses its own jobs, connections and buckets. The
controlled clock (``SHARELIFT_HOUR_SECONDS``) only paces incremental and sync schedules.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
HOUR = 6  # seconds in a test "hour"


@pytest.fixture(scope="package")
def sharelift_airflow(testbed_root: Path) -> Iterator[Any]:
    """Airflow with ``SHARELIFT_JOBS_DIR`` at ``<home>/jobs``, an empty folder that a module
    may put job files in (the dag-processor picks them up within seconds)."""
    from sharelift.local.airflow import AirflowServer

    home = testbed_root / "airflow-e2e"
    home.mkdir()
    jobs = home / "jobs"
    jobs.mkdir()
    server = AirflowServer(
        home,
        REPO / "dags",
        REPO / "plugins",
        parallelism=24,
        extra_env={
            "SHARELIFT_WORK_DIR": str(home / "work"),
            "SHARELIFT_JOBS_DIR": str(jobs),
            "SHARELIFT_HOUR_SECONDS": str(HOUR),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        },
    )
    server.start()
    try:
        # The project's own set-up creates the pool, not the test; 20 slots (a run's
        # limit, above this machine's default) so that the cap of 20 per run is what binds.
        subprocess.run(
            [sys.executable, "-m", "sharelift.cli", "airflow-setup", "--pool-slots", "20"],
            env=server.env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield server
    finally:
        server.stop()
