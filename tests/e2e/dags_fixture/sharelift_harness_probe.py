"""Probe DAGs for the Airflow harness test (tests/e2e/test_airflow_harness.py) only.

``sharelift_harness_probe``: ``plan`` turns the run conf into ``count`` items, ``work`` is
mapped over them in the pool ``sharelift_probe_pool`` (the test creates it with 2 slots),
and ``summarize`` logs the conf's ``marker`` so the test can find it in the task log.
``sharelift_harness_trivial``: one task that does nothing, to time a run end to end.
"""

from __future__ import annotations

import time

from airflow.sdk import Param, dag, task

PROBE_POOL = "sharelift_probe_pool"


@dag(
    dag_id="sharelift_harness_probe",
    schedule=None,
    catchup=False,
    max_active_tasks=32,
    max_active_runs=4,
    params={
        "count": Param(6, type="integer", minimum=1, maximum=100),
        "sleep": Param(1.0, type="number", minimum=0),
        "marker": Param("probe", type="string"),
    },
    tags=["sharelift-test"],
)
def sharelift_harness_probe():
    @task
    def plan(params=None) -> list[int]:
        return list(range(int(params["count"])))

    @task(pool=PROBE_POOL)
    def work(item: int, params=None) -> int:
        time.sleep(float(params["sleep"]))
        return item * item

    @task
    def summarize(results: list[int], params=None) -> int:
        total = sum(results)
        print(f"probe marker={params['marker']} items={len(results)} total={total}")
        return total

    summarize(work.expand(item=plan()))


@dag(dag_id="sharelift_harness_trivial", schedule=None, catchup=False, tags=["sharelift-test"])
def sharelift_harness_trivial():
    @task
    def noop() -> None:
        return None

    noop()


sharelift_harness_probe()
sharelift_harness_trivial()
