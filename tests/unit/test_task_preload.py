"""The tasks' modules are imported where Airflow forks task processes from (its jobs: the
scheduler, the dag-processor), never into a task process of its own accord."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# What a fresh interpreter has of the preloaded modules after the listener ran for COMPONENT.
_PROBE = """
import json, sys
from sharelift.airflow import preload
if sys.argv[1] == "job":
    from airflow.jobs.job import Job
    component = Job.__new__(Job)  # a job, as Airflow hands it over before the job starts
else:
    from airflow.sdk.execution_time.task_runner import TaskRunnerMarker
    component = TaskRunnerMarker()
preload.on_starting(component=component)
print(json.dumps([m for m in preload.TASK_MODULES if m in sys.modules]))
"""


def _loaded_after_on_starting(component: str, tmp_path: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, component],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_an_airflow_job_starting_imports_every_module_the_tasks_run(tmp_path: Path) -> None:
    from sharelift.airflow import preload

    assert _loaded_after_on_starting("job", tmp_path) == list(preload.TASK_MODULES)


def test_a_task_process_starting_imports_nothing_for_sharelift(tmp_path: Path) -> None:
    loaded = _loaded_after_on_starting("task", tmp_path)
    assert "sharelift.storage.oss_destination" not in loaded
    assert "sharelift.engine.steps" not in loaded


def test_every_preloaded_module_exists() -> None:
    from sharelift.airflow import preload

    assert preload.import_task_modules() == []


def test_the_plugin_registers_the_listener() -> None:
    import importlib.util

    from sharelift.airflow import preload

    spec = importlib.util.spec_from_file_location(
        "sharelift_plugin_under_test", REPO / "plugins" / "sharelift_plugin.py"
    )
    assert spec and spec.loader
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    assert preload in plugin.SharelIftPlugin.listeners
