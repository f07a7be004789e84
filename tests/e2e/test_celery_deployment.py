"""Several workers: ``docker-compose.yaml`` run natively (CeleryExecutor, PostgreSQL, Redis,
two Celery workers), migrations from NFS into its ``sharelift ossd`` through the REST API.

The deployment is started once for the module from the compose file itself
(``tests/deployment/compose.py``), with two worker replicas that have their own HOME,
AIRFLOW_HOME and logs. The tests run in file order on it: the last one kills a worker.

The shares are as small as each proof allows: every run pays a few task hops on two
Celery workers, so bytes and files beyond what spreads subtasks over both workers, keeps
twelve subtasks under one limit long enough to measure it, or has a copy running when a
worker is killed only add minutes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.deployment.compose import NativeCompose

pytestmark = [pytest.mark.e2e, pytest.mark.servers, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "sharelift_migrate"
WORKERS = ("worker-1", "worker-2")
MB = 1_000_000

# The run's manifest and subtasks are in the state database, so each worker gets a private
# work folder (upload checkpoints only), as on hosts that share no disk.
SHARED_WORK_DIR = False

# Test-speed settings on top of the compose file (an override file's role): a worker that
# died is noticed after 20 s instead of 5 min, and its tasks are retried 2 s later.
_FAST = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "90",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
    "AIRFLOW__API__WORKERS": "1",
}
AIRFLOW_SERVICES = ("init", "scheduler", "dag-processor", "triggerer", "api-server", "worker")


@dataclass
class Deployment:
    compose: NativeCompose
    airflow: Any  # sharelift.local.airflow.AirflowServer (REST client)
    env: dict[str, str]

    @property
    def state_url(self) -> str:
        port = self.compose.port("postgres", 5432)
        return f"postgresql+psycopg2://airflow:{self.env['POSTGRES_PASSWORD']}@127.0.0.1:{port}/sharelift"

    def bucket(self, name: str) -> Any:
        import oss2

        auth = oss2.AuthV4(self.env["OSSD_ACCESS_KEY_ID"], self.env["OSSD_ACCESS_KEY_SECRET"])
        bucket = oss2.Bucket(auth, self.compose.url("ossd", 9000), name, region="cn-hangzhou")
        bucket.create_bucket()
        return bucket

    def puts(self, bucket: str) -> Counter[str]:
        """Successful object writes per key, from ossd's request log."""
        log = self.compose.replicas["ossd"][0].log.read_text(errors="replace")
        pattern = re.compile(rf"sharelift\.ossd: PUT /{re.escape(bucket)}/(\S+) -> 200 ")
        return Counter(unquote(m.group(1).split("?")[0]) for m in pattern.finditer(log))


@pytest.fixture(scope="module")
def deployment(testbed_root: Path):  # type: ignore[no-untyped-def]
    from sharelift.local.airflow import AirflowServer

    env = {
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(32),
        "OSSD_ACCESS_KEY_ID": "sharelift-e2e",
        "OSSD_ACCESS_KEY_SECRET": secrets.token_urlsafe(24),
        "SHARELIFT_WORKER_CONCURRENCY": "6",
    }
    compose = NativeCompose(
        REPO / "docker-compose.yaml",
        testbed_root / "celery-deployment",
        env,
        scale={"worker": 2},
        override={"services": {s: {"environment": _FAST} for s in AIRFLOW_SERVICES}},
        private_volumes=() if SHARED_WORK_DIR else ("sharelift-work",),
    )
    compose.up(timeout=600)
    airflow = None
    try:
        print(f"\ndeployment healthy after {compose.healthy_after:.0f} s")
        passwords = compose.path(
            "api-server", "/opt/airflow/simple_auth_manager_passwords.json.generated"
        )
        password = json.loads(passwords.read_text())["admin"]
        airflow = AirflowServer.client(compose.url("api-server", 8080), "admin", password)
        airflow.wait_for_dag(DAG_ID, timeout=300)
        airflow.unpause(DAG_ID)
        yield Deployment(compose, airflow, env)
    finally:
        if airflow is not None:
            airflow.stop()  # closes its keep-alive connections, which hold uvicorn's shutdown
        ended = compose.down()
        print("stopped:", json.dumps(ended, indent=1))
        print("peak RSS per process (MB):")
        for host, procs in compose.peak_rss().items():
            top = ", ".join(
                f"{name.split('/')[-1]} {rss / 2**20:.0f}" for _, name, rss in procs[:4]
            )
            print(f"  {host}: {len(procs)} processes; largest: {top}")
        left = compose.leftovers()
        assert not left, f"processes left running: {left}"


def make_share(root: Path, files: int, size: int, folders: int) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for i in range(files):
        rel = f"d{i % folders:03d}/f{i:05d}.bin"
        data = os.urandom(size if size else 200 + (i * 37) % 1800)
        path = root / rel
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
            path.parent.chmod(0o755)
        path.write_bytes(data)
        path.chmod(0o644)
        out[rel] = data
    root.chmod(0o755)
    return out


def connect(dep: Deployment, nfs_server: Any, folder: str, bucket: str) -> tuple[str, str]:
    dep.bucket(bucket)
    src, dst = f"{bucket}_src", f"{bucket}_dst"
    dep.airflow.set_connection(
        src,
        "sharelift_nfs",
        host=nfs_server.host,
        port=nfs_server.nfs_port,
        schema=nfs_server.export_path,
        extra={"mount_port": nfs_server.mount_port, "path": folder},
    )
    dep.airflow.set_connection(
        dst,
        "oss",
        schema=bucket,
        extra={
            "auth_type": "AK",
            "access_key_id": dep.env["OSSD_ACCESS_KEY_ID"],
            "access_key_secret": dep.env["OSSD_ACCESS_KEY_SECRET"],
            "endpoint": dep.compose.url("ossd", 9000),
            "region": "cn-hangzhou",
        },
    )
    return src, dst


def trigger(dep: Deployment, job: str, src: str, dst: str, files_per_subtask: int) -> str:
    return str(
        dep.airflow.trigger(
            DAG_ID,
            {
                "job_name": job,
                "source_conn_id": src,
                "destination_conn_id": dst,
                "subtask_file_count": files_per_subtask,
            },
        )
    )


def copies(dep: Deployment, run_id: str) -> list[dict[str, Any]]:
    tis = dep.airflow.task_instances(DAG_ID, run_id)
    return [ti for ti in tis if ti["task_id"] == "copy"]


def assert_identical(bucket: Any, files: dict[str, bytes]) -> None:
    """Every object read back and hashed against its source file."""

    def digest(key: str) -> str:
        return hashlib.sha256(bucket.get_object(key).read()).hexdigest()

    with ThreadPoolExecutor(8) as pool:
        got = dict(zip(files, pool.map(digest, files), strict=True))
    wrong = [k for k, data in files.items() if got[k] != hashlib.sha256(data).hexdigest()]
    assert not wrong, f"{len(wrong)} objects differ from their source, e.g. {wrong[:3]}"
    import oss2

    listed = {o.key for o in oss2.ObjectIterator(bucket) if not o.key.startswith("aliyun_mgw")}
    assert listed == set(files)


def test_files_in_twenty_five_subtasks_land_identical_copied_on_both_workers(
    deployment: Deployment, nfs_server: Any
) -> None:
    # 25 subtasks in 20 copy tasks for the 12 copy slots of the two workers: more than one
    # round, so both take some. 40 files each (1,000 in all) is enough; the count itself
    # proves nothing.
    share = Path(nfs_server.export_dir) / "celery-spread"
    files = make_share(share, 1000, 0, 25)
    src, dst = connect(deployment, nfs_server, "celery-spread", "celery-spread")
    started = time.monotonic()
    run_id = trigger(deployment, "celery-spread", src, dst, 40)
    assert deployment.airflow.wait_for_run(DAG_ID, run_id, timeout=900) == "success"
    wall = time.monotonic() - started
    tis = copies(deployment, run_id)
    per_worker = Counter(ti["hostname"] for ti in tis)
    print(
        f"\n{len(files):,} files, 25 subtasks in {len(tis)} copy tasks in {wall:.0f} s; "
        f"copy tasks per worker: {dict(per_worker)}"
    )
    # 1,000 small files are less work than 20 copy tasks are worth: one per pool slot
    assert len(tis) == 20 and all(ti["state"] == "success" for ti in tis)
    assert set(per_worker) == set(WORKERS)
    assert_identical(deployment.bucket("celery-spread"), files)
    assert set(deployment.puts("celery-spread").values()) == {1}


def rate_while_all_run(rows: list[dict[str, Any]]) -> tuple[float, float, float]:
    """(bytes/s, window start, window length) over the window in which every subtask was
    copying: from the last subtask's first file start to the first subtask's last file end.
    Each file's bytes count evenly over its own start-to-end time."""
    spans: dict[int, list[float]] = {}
    for r in rows:
        span = spans.setdefault(r["subtask"], [r["started_at"], r["finished_at"]])
        span[0] = min(span[0], r["started_at"])
        span[1] = max(span[1], r["finished_at"])
    lo = max(s[0] for s in spans.values())
    hi = min(s[1] for s in spans.values())
    if hi <= lo:
        return 0.0, lo, 0.0
    moved = 0.0
    for r in rows:
        a, b = r["started_at"], r["finished_at"]
        if b <= a:
            moved += r["size"] if lo <= a <= hi else 0
        else:
            moved += r["size"] * max(0.0, min(b, hi) - max(a, lo)) / (b - a)
    return moved / (hi - lo), lo, hi - lo


def test_a_flow_control_limit_holds_for_the_sum_of_both_workers(
    deployment: Deployment, nfs_server: Any
) -> None:
    from sharelift.engine.state import StateStore

    limit_mb = 0.5
    share = Path(nfs_server.export_dir) / "celery-limit"
    # 12 subtasks (one per copy slot of the two workers) of 2 MB: ~48 s at the limit, so
    # that all twelve copy at once for a good part of it, however late the last one starts.
    files = make_share(share, 240, 100_000, 12)
    src, dst = connect(deployment, nfs_server, "celery-limit", "celery-limit")
    shown = deployment.compose.exec("scheduler", ["sharelift", "config"])
    assert "Airflow connection sharelift_state" in shown.stdout, shown.stdout + shown.stderr
    done = deployment.compose.exec(
        "scheduler",
        [
            "sharelift",
            "flow-control",
            "set",
            "celery-limit",
            f"00:00-24:00={limit_mb}",
            "--new-job",
        ],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = trigger(deployment, "celery-limit", src, dst, 20)
    assert deployment.airflow.wait_for_run(DAG_ID, run_id, timeout=900) == "success"
    tis = copies(deployment, run_id)
    assert len(tis) == 12
    host_of = {ti["map_index"]: ti["hostname"] for ti in tis}
    store = StateStore(deployment.state_url)
    rows = list(store.iter_outcomes("celery-limit", run_id, status="copied"))
    store.close()
    assert len(rows) == len(files)
    first = min(r["started_at"] for r in rows)
    last = max(r["finished_at"] for r in rows)
    total = sum(r["size"] for r in rows)
    overall = total / (last - first) / MB
    rate, start, window = rate_while_all_run(rows)
    by_worker: Counter[str] = Counter()
    for r in rows:
        by_worker[host_of[r["subtask"]]] += r["size"]
    print(
        f"\nlimit {limit_mb} MB/s: {rate / MB:.3f} MB/s summed over both workers while all 12 "
        f"subtasks copied ({window:.1f} s from {start - first:.1f} s); whole copy phase "
        f"{total / MB:.1f} MB in {last - first:.1f} s = {overall:.3f} MB/s; "
        f"bytes per worker: {dict(by_worker)}"
    )
    assert set(by_worker) == set(WORKERS)
    assert overall <= 1.1 * limit_mb
    assert window >= 5, "the twelve subtasks hardly copied at the same time"
    assert 0.9 * limit_mb <= rate / MB <= 1.1 * limit_mb
    assert_identical(deployment.bucket("celery-limit"), files)


def test_a_killed_worker_s_subtasks_run_again_on_the_other_and_nothing_is_copied_twice(
    deployment: Deployment, nfs_server: Any
) -> None:
    from sharelift.engine.flow_control import FlowControl, set_flow_control
    from sharelift.engine.state import StateStore

    share = Path(nfs_server.export_dir) / "celery-kill"
    # 12 subtasks of 1 MB, one per copy slot of the two workers, paced at 1 MB/s so that the
    # kill is mid-run; the killed worker's half then runs again in the other's slots.
    files = make_share(share, 600, 20_000, 12)
    src, dst = connect(deployment, nfs_server, "celery-kill", "celery-kill")
    store = StateStore(deployment.state_url)
    # The pace only: written straight to the state database (the limit test above sets its
    # limit with the CLI in the scheduler's container, which costs a process start).
    set_flow_control(store, "celery-kill", FlowControl.parse("00:00-24:00=1"))
    run_id = trigger(deployment, "celery-kill", src, dst, 50)  # 12 subtasks in 12 copy tasks
    deadline = time.monotonic() + 600
    while True:
        running = [
            ti
            for ti in copies(deployment, run_id)
            if ti["state"] == "running" and ti["hostname"] == "worker-2"
        ]
        copied = store.counts("celery-kill", run_id).get("copied", (0, 0))[0]
        if running and copied > 0:
            break
        assert time.monotonic() < deadline, "worker-2 never ran a copy task"
        time.sleep(0.5)
    killed = deployment.compose.kill("worker", 2, signal.SIGKILL)
    killed_at = time.monotonic()
    victims = {ti["map_index"] for ti in running}
    print(
        f"\nSIGKILL to {killed} processes of worker-2 with copy tasks {sorted(victims)} running, {copied} files copied"
    )
    assert deployment.airflow.wait_for_run(DAG_ID, run_id, timeout=900) == "success"
    store.close()
    tis = {ti["map_index"]: ti for ti in copies(deployment, run_id)}
    print(
        f"run succeeded {time.monotonic() - killed_at:.0f} s after the kill; the killed "
        "copy tasks ended as "
        + ", ".join(
            f"{i}: try {tis[i]['try_number']} on {tis[i]['hostname']}" for i in sorted(victims)
        )
    )
    for index in victims:
        assert tis[index]["state"] == "success"
        assert tis[index]["hostname"] == "worker-1", tis[index]
        assert tis[index]["try_number"] >= 2
    puts = deployment.puts("celery-kill")
    twice = [k for k, n in puts.items() if n > 1]
    assert not twice, f"{len(twice)} objects written more than once, e.g. {twice[:3]}"
    print(f"{len(puts)} objects, each written once")
    assert_identical(deployment.bucket("celery-kill"), files)
