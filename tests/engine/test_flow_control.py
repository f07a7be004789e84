"""Flow control end to end on local folders (docs/flow-control.md): a job-wide limit, changed live.

Timing tests assert lower bounds only where the limit must hold (a loaded machine is only
ever slower), and for a raised limit only that the run ended far sooner than the old limit
would allow.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.cli import main as cli
from sharelift.engine.flow_control import (
    MB,
    FlowControl,
    JobThrottle,
    get_flow_control,
    running_subtasks,
    set_flow_control,
)
from sharelift.engine.jobs import JobSpec
from sharelift.engine.manifest import Manifest
from sharelift.engine.partition import partition
from sharelift.engine.runner import copy_in_worker, run_job
from sharelift.engine.scan import scan
from sharelift.engine.state import StateStore
from sharelift.storage import TransferConfig, open_source

FILE_SIZE = 200_000  # small files: bytes are metered per read, one read per file here


def make_source(root: Path, total_mb: int) -> int:
    root.mkdir(parents=True)
    blob = os.urandom(FILE_SIZE)
    count = total_mb * MB // FILE_SIZE
    for i in range(count):
        (root / f"d{i % 4}").mkdir(exist_ok=True)
        (root / f"d{i % 4}" / f"f{i:04d}.bin").write_bytes(blob)
    return count


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.fixture
def addresses(tmp_path: Path) -> tuple[SourceAddress, DestinationAddress, Path]:
    dst = tmp_path / "dst"
    dst.mkdir()
    return (
        SourceAddress(name="src-local", protocol="local", path=str(tmp_path / "src")),
        DestinationAddress(name="dst-local", kind="local", path=str(dst)),
        dst,
    )


def test_four_subtasks_in_four_processes_share_the_job_limit(tmp_path: Path, addresses) -> None:  # type: ignore[no-untyped-def]
    """40 MB at 4 MB/s for the whole job takes >= ~10 s, though 4 processes copy it."""
    src, dst, dst_root = addresses
    files = make_source(tmp_path / "src", 40)
    job = JobSpec(name="fc-procs", source="s", destination="d", subtask_files=files // 4)
    work = str(tmp_path / "work")
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    manifest = Manifest(store, job.name, "run1")
    with open_source(src) as source:
        scan(source, job, manifest)
    subtasks = partition(manifest, job.subtask_files, job.subtask_bytes)
    assert len(subtasks) == 4
    set_flow_control(store, job.name, FlowControl.parse("00:00-24:00=4"))

    # Processes, as Airflow runs copy tasks: they share nothing but the state database.
    with ProcessPoolExecutor(4) as pool:
        started = time.monotonic()
        futures = [
            pool.submit(
                copy_in_worker,
                job.to_dict(),
                "run1",
                st.to_dict(),
                src,
                dst,
                work,
                url,
                TransferConfig(),
            )
            for st in subtasks
        ]
        results = [f.result() for f in futures]
        elapsed = time.monotonic() - started
    assert sum(r.get("copied", 0) for r in results) == files
    assert tree_bytes(dst_root) == 40 * MB
    assert elapsed >= (40 / 4) * 0.9, f"40 MB at 4 MB/s took only {elapsed:.2f} s"
    assert running_subtasks(store, job.name) == []  # every lease released
    store.close()


def test_raising_the_limit_speeds_up_a_running_job(tmp_path: Path, addresses) -> None:  # type: ignore[no-untyped-def]
    """At 2 MB/s, 40 MB would take 20 s; raised to 40 MB/s after 2 s, it ends far sooner."""
    src, dst, dst_root = addresses
    files = make_source(tmp_path / "src", 40)
    job = JobSpec(name="fc-raise", source="s", destination="d", subtask_files=files // 4)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    set_flow_control(store, job.name, FlowControl.parse("00:00-24:00=2"))
    seen: dict[str, float] = {}

    def raise_limit() -> None:
        time.sleep(2)
        seen["copied_before"] = tree_bytes(dst_root)
        seen["rc"] = cli(["flow-control", "set", job.name, "00:00-24:00=40", "--state-url", url])
        seen["at"] = time.monotonic()

    changer = threading.Thread(target=raise_limit)
    started = time.monotonic()
    changer.start()
    summary = run_job(job, src, dst, work_dir=str(tmp_path / "work"), state_url=url, workers=4)
    elapsed = time.monotonic() - started
    changer.join()
    assert seen["rc"] == 0
    assert summary["state"] == "Completed" and summary["files_copied"] == files
    assert summary["subtasks"] == 4
    # Before the change the limit held (2 s at 2 MB/s, plus one read per subtask of slack)...
    assert seen["copied_before"] <= 2 * 2 * MB + 4 * FILE_SIZE + MB
    # ...and after it the job went much faster than the old limit allows for 40 MB (20 s).
    assert elapsed < 12, f"still slow after the limit was raised: {elapsed:.2f} s"
    store.close()


@pytest.fixture(scope="module")
def postgres(testbed_root: Path):  # type: ignore[no-untyped-def]
    from tests.servers.postgres import PostgresServer

    server = PostgresServer(testbed_root / "postgres-flow-control")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_shares_joining_and_leaving(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """The published rates never sum above the limit as subtasks join, leave or crash."""
    if backend == "postgres":
        url = request.getfixturevalue("postgres").url
    else:
        url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    job = f"fc-shares-{backend}"
    set_flow_control(store, job, FlowControl.parse("00:00-24:00=12"))
    limit = 12 * MB

    def published() -> float:
        return sum(r["rate"] or 0 for r in running_subtasks(store, job))

    a = JobThrottle(store, job, "r1", 0, lease_ttl=0.5)
    a.refresh()
    assert a.rate == limit  # alone: the whole limit
    b = JobThrottle(store, job, "r1", 1, lease_ttl=0.5)
    b.refresh()
    assert b.rate == 0  # joining: nothing until the others have made room
    assert published() <= limit
    a.refresh()
    assert a.rate == limit / 2
    b.refresh()
    assert b.rate == limit / 2
    c = JobThrottle(store, job, "r2", 0, lease_ttl=0.5)  # another run of the job
    for t in (c, a, b, c):
        t.refresh()
        assert published() <= limit * (1 + 1e-9)
    assert a.rate == b.rate == c.rate == limit / 3
    # b crashes (no more beats): after the TTL the others take its share back.
    a.refresh()
    c.refresh()
    time.sleep(0.6)
    a.refresh()
    c.refresh()
    a.refresh()
    assert a.live == 2 and a.rate == c.rate == limit / 2
    # a leaves cleanly: its lease goes at once.
    a.close()
    c.refresh()
    assert c.rate == limit
    # Lowered live: applies at the next refresh; cleared: unthrottled.
    set_flow_control(store, job, FlowControl.parse("00:00-24:00=1"))
    c.refresh()
    assert c.rate == 1 * MB
    cli(["flow-control", "clear", job, "--state-url", store.url])
    c.refresh()
    assert c.rate is None
    started = time.monotonic()
    c.consume(100 * MB)  # unthrottled: no wait at all
    assert time.monotonic() - started < 0.1
    for t in (b, c):
        t.close()
    store.close()


def test_a_sleeping_reader_wakes_up_to_a_raised_limit(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    set_flow_control(store, "fc-wake", FlowControl.parse("00:00-24:00=0.1"))
    with JobThrottle(store, "fc-wake", "r1", 0, refresh_seconds=0.2) as t:
        t.consume(1)
        threading.Timer(
            0.5,
            lambda: set_flow_control(store, "fc-wake", FlowControl.parse("00:00-24:00=1000")),
        ).start()
        started = time.monotonic()
        t.consume(1 * MB)  # 10 s at 0.1 MB/s
        assert time.monotonic() - started < 3
    store.close()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = cli(["flow-control", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_round_trip_and_bad_input_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(url).upsert_run("cli-job", "manual__1", migration_type="full", state="Completed")
    rc, out, _ = run_cli(capsys, "show", "cli-job", "--state-url", url)
    assert rc == 0 and "no flow control (unthrottled)" in out

    rc, out, _ = run_cli(
        capsys,
        "set",
        "cli-job",
        "08:00-18:00=10, 18:00-08:00=50",
        "--timezone",
        "Asia/Shanghai",
        "--state-url",
        url,
    )
    assert rc == 0
    assert "'08:00-18:00=10,18:00-08:00=50'" in out and "Asia/Shanghai" in out
    rc, out, _ = run_cli(capsys, "--state-url", url, "show", "cli-job")  # option before action
    assert rc == 0
    assert "crosses midnight" in out and "IN EFFECT NOW" in out
    assert "outside these ranges: unthrottled" in out
    store = StateStore(url)
    stored = get_flow_control(store, "cli-job")
    assert stored is not None and stored.text == "08:00-18:00=10,18:00-08:00=50"
    assert stored.timezone == "Asia/Shanghai"

    for rules, field, rule in [
        ("08:00-18:00=10,12:00-20:00=5", "flow_control", "must not overlap"),
        ("08:00-18:00=0", "flow_control", "greater than 0"),
        ("25:00-26:00=5", "flow_control", "HH:MM"),
    ]:
        rc, out, err = run_cli(capsys, "set", "cli-job", rules, "--state-url", url)
        assert rc != 0
        assert f"{field}: " in err and rule in err, err
        assert get_flow_control(store, "cli-job") == stored  # nothing changed
    rc, _, err = run_cli(
        capsys, "set", "cli-job", "08:00-18:00=5", "--timezone", "Nowhere/Land", "--state-url", url
    )
    assert rc != 0 and "timezone: " in err and "IANA" in err
    rc, _, err = run_cli(capsys, "set", "Bad_Job", "08:00-18:00=5", "--state-url", url)
    assert rc != 0 and "job_name: " in err
    assert get_flow_control(store, "cli-job") == stored

    rc, out, _ = run_cli(capsys, "clear", "cli-job", "--state-url", url)
    assert rc == 0 and "cleared" in out
    assert get_flow_control(store, "cli-job") is None
    rc, out, _ = run_cli(capsys, "clear", "cli-job", "--state-url", url)
    assert rc == 0 and "had no flow control" in out
    store.close()


def test_cli_default_state_url_follows_the_work_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHARELIFT_STATE_URL", raising=False)
    monkeypatch.setenv("SHARELIFT_WORK_DIR", str(tmp_path / "work"))
    rc, _, _ = run_cli(capsys, "set", "env-job", "22:00-06:00=3", "--new-job")
    assert rc == 0
    store = StateStore(f"sqlite:///{tmp_path / 'work' / 'state.db'}")
    fc = get_flow_control(store, "env-job")
    assert fc is not None and fc.timezone == "UTC" and fc.text == "22:00-06:00=3"
    store.close()
