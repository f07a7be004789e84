"""Faults after the copy (verify, report) and a copying process killed: every run ends in a
terminal state with its cause, and no file that was stored exactly is counted against it.

The run's steps are those of ``sharelift.engine.steps`` (what the DAG's tasks and the
engine runner call), against ossd behind ``FaultProxy``; every object is downloaded and
compared with its source file afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sharelift.engine import steps
from sharelift.engine.jobs import JobSpec
from sharelift.engine.report import REPORT_ROOT, list_names, report_folder
from sharelift.engine.state import StateStore
from sharelift.storage import RetryPolicy, TransferConfig, open_destination
from tests.faults.conftest import TRANSFER, Copy, Tally, make_tree, record
from tests.faults.proxy import FaultProxy, Faults

# The conftest's job name (``Copy.check`` reads its outcomes); connection ids of its own, for
# ``sharelift report``, which looks the run's connections up in Airflow.
JOB = JobSpec(name="faults", source="terminal_src", destination="terminal_dst")
# A bucket that does not answer at all is given up on quickly (the outage tests show that
# the default policy rides out a real one).
BRIEF = RetryPolicy(first_wait=0.01, max_wait=0.05, request_time=0.3, file_time=0.3)


@dataclasses.dataclass
class Bed:
    tmp_path: Path
    root: Path
    source: Any
    proxied: Any  # ossd behind the proxy
    direct: Any  # ossd without any fault in the way
    proxy: FaultProxy
    files: dict[str, bytes]
    bucket: str
    oss_server: Any

    @property
    def state_url(self) -> str:
        return f"sqlite:///{self.tmp_path}/state.db"

    @property
    def work_dir(self) -> str:
        return str(self.tmp_path / "work")

    def open_run(self, run_id: str = "r1", transfer: TransferConfig = TRANSFER) -> Any:
        return steps.open_run(
            JOB,
            run_id,
            self.source,
            self.proxied,
            work_dir=self.work_dir,
            state_url=self.state_url,
            transfer=transfer,
        )

    def recorded(self, run_id: str = "r1") -> dict[str, Any]:
        state = StateStore(self.state_url)
        try:
            return state.get_run(JOB.name, run_id) or {}
        finally:
            state.close()

    def check(self, name: str, run_id: str = "r1") -> Tally:
        """Every object byte-identical to its source; no empty reason."""
        copy = Copy(self.tmp_path, self.root, self.source, self.direct, run_id=run_id)
        tally = copy.check(self.direct, 0.0)
        tally.injected = dict(self.proxy.injected)
        record(name, tally)
        assert (tally.corrupt, tally.missing, tally.empty_reasons) == (0, 0, 0)
        return tally

    def report_object(self, kind: str, run_id: str = "r1") -> str | None:
        with open_destination(self.direct) as dst, dst.at_root() as root:
            key = report_folder(JOB.name, run_id) + list_names(JOB.name)[kind]
            if root.head(key) is None:
                return None
            with root.open(key) as f:
                return f.read().decode()


@pytest.fixture
def bed(oss_server, local_tree, tmp_path: Path, unique_name: str) -> Iterator[Bed]:  # type: ignore[no-untyped-def]
    root, source_address = local_tree
    files = make_tree(root)
    bucket = f"t-{unique_name}"
    oss_server.create_bucket(bucket)
    with FaultProxy(oss_server.port) as proxy:
        yield Bed(
            tmp_path,
            root,
            dataclasses.replace(source_address, name=JOB.source),
            proxy.destination_address(oss_server, bucket=bucket),
            oss_server.destination_address(bucket=bucket),
            proxy,
            files,
            bucket,
            oss_server,
        )


def copy_all(run: steps.RunContext) -> dict[str, Any]:
    """Check, scan, partition and copy every subtask; returns the scan summary."""
    steps.check(run.source, run.destination)
    scanned = steps.scan(run)
    for subtask in steps.partition(run):
        steps.copy(run, subtask)
    return scanned.to_dict()


# -- verify -----------------------------------------------------------------------------------


def test_transient_errors_during_verify_leave_every_completed_file_completed(bed: Bed) -> None:
    with bed.open_run() as run:
        scanned = copy_all(run)
        bed.proxy.faults = Faults(status_rate=0.2, statuses=(500, 503), reset_rate=0.2)
        verified = steps.verify(run)
        bed.proxy.faults = Faults()
        summary = steps.report(run, scanned, verified)
    assert bed.proxy.injected
    assert verified["mismatched"] == 0
    assert (summary["state"], summary["files_failed"]) == ("Completed", 0)
    assert summary["files_copied"] == len(bed.files)
    assert bed.check("verify: 20% 5xx + 20% resets").ok == len(bed.files)


def test_a_bucket_that_cannot_answer_verify_leaves_files_completed_and_listed_unverified(
    bed: Bed,
) -> None:
    transfer = dataclasses.replace(TRANSFER, retry=BRIEF)
    with bed.open_run(transfer=transfer) as run:
        scanned = copy_all(run)
        bed.proxy.faults = Faults(status_rate=1.0, statuses=(503,))
        verified = steps.verify(run)
        bed.proxy.faults = Faults()
        summary = steps.report(run, scanned, verified)
    assert verified == {"verified": 0, "mismatched": 0, "unverified": len(bed.files)}
    assert (summary["state"], summary["files_failed"]) == ("Completed", 0)
    assert summary["files_unverified"] == len(bed.files)
    unverified = (bed.report_object("unverified") or "").splitlines()
    assert len(unverified) == len(bed.files)
    for line in unverified:
        name, reason = line.split("\t")
        assert name and reason.startswith("could not be verified: ") and "503" in reason
    completed = (bed.report_object("completed") or "").splitlines()
    assert len(completed) == len(bed.files)
    assert all(len(line.split("\t")) == 4 for line in completed)
    bed.check("verify: bucket answers only 503")

    # A later verify of the same run checks them again.
    with bed.open_run() as run:
        assert steps.verify(run) == {"verified": len(bed.files), "mismatched": 0, "unverified": 0}


# -- report -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "shows"),
    [
        (Faults(forbid_put_rate=1.0), "403"),
        (Faults(status_rate=1.0, statuses=(503,)), "503"),
    ],
    ids=["403", "503"],
)
def test_a_refused_report_ends_the_run_failed_and_sharelift_report_stores_it_later(
    bed: Bed, monkeypatch: pytest.MonkeyPatch, faults: Faults, shows: str
) -> None:
    from sharelift.cli import main

    transfer = dataclasses.replace(TRANSFER, retry=BRIEF)
    with bed.open_run(transfer=transfer) as run:
        scanned = copy_all(run)
        verified = steps.verify(run)
        bed.proxy.faults = faults
        with pytest.raises(steps.ReportNotWritten, match="report could not be written"):
            steps.report(run, scanned, verified)
        bed.proxy.faults = Faults()
    recorded = bed.recorded()
    assert recorded["state"] == "Failed"
    assert recorded["message"].startswith("report could not be written: ")
    assert shows in recorded["message"]
    assert steps.finish(None, recorded) == f"Failed: {recorded['message']}"
    assert bed.report_object("summary") is None
    bed.check(f"report refused ({shows})")

    # The lists stayed in the state database: the command stores the report from them,
    # through the run's own connections.
    monkeypatch.setenv(
        "AIRFLOW_CONN_TERMINAL_SRC",
        json.dumps({"conn_type": "sharelift_local", "extra": {"path": str(bed.root)}}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_TERMINAL_DST", json.dumps(bed.oss_server.connection_fields(bed.bucket))
    )
    monkeypatch.setenv("SHARELIFT_WORK_DIR", bed.work_dir)
    assert main(["report", JOB.name, "r1", "--state-url", bed.state_url]) == 0
    assert bed.recorded()["state"] == "Completed"
    assert bed.recorded()["message"] is None
    summary = json.loads(bed.report_object("summary") or "{}")
    assert (summary["state"], summary["files_copied"]) == ("Completed", len(bed.files))
    assert summary["accounting"]["adds_up"]
    assert len((bed.report_object("completed") or "").splitlines()) == len(bed.files)


def test_sharelift_report_refuses_a_run_it_does_not_know(bed: Bed, capsys: Any) -> None:
    from sharelift.cli import main

    with bed.open_run() as run:
        steps.scan(run)
    assert main(["report", JOB.name, "no-such-run", "--state-url", bed.state_url]) == 2
    assert "has no run 'no-such-run'" in capsys.readouterr().err


# -- a copying process killed -----------------------------------------------------------------


def _copy_one_subtask(bed_data: dict[str, Any]) -> None:
    """The runner's copy of one subtask, in a process of its own (killed by the test)."""
    from sharelift.engine.runner import copy_in_worker

    copy_in_worker(**bed_data)


def stored_objects(bed: Bed) -> int:
    with open_destination(bed.direct) as dst:
        return len(dst.existing(list(bed.files)) or ())


def test_a_run_resumed_after_its_copying_process_was_killed_counts_what_it_stored_as_copied(
    bed: Bed,
) -> None:
    from sharelift.engine.runner import run_job

    with bed.open_run() as run:
        steps.check(run.source, run.destination)
        steps.scan(run)
        (subtask,) = steps.partition(run)
    # Slow answers, so that the kill lands while files are being stored; the records of
    # the files stored since the last batch (up to 200 files or 5 s) die with the process.
    bed.proxy.faults = Faults(delay_rate=1.0, delay=0.05)
    worker = multiprocessing.get_context("spawn").Process(
        target=_copy_one_subtask,
        args=(
            {
                "job": JOB.to_dict(),
                "run_id": "r1",
                "subtask": subtask.to_dict(),
                "source": bed.source,
                "destination": bed.proxied,
                "work_dir": bed.work_dir,
                "state_url": bed.state_url,
                "transfer": TRANSFER,
            },
        ),
    )
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while stored_objects(bed) < 20 and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert worker.is_alive(), "the copy ended before it could be killed"
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.join(timeout=30)
    bed.proxy.faults = Faults()
    stored_before = stored_objects(bed)
    state = StateStore(bed.state_url)
    try:
        recorded_before = state.counts(JOB.name, "r1")
    finally:
        state.close()
    assert stored_before > sum(n for n, _ in recorded_before.values()), (
        "the kill left no stored file unrecorded: the test proves nothing"
    )

    summary = run_job(
        JOB,
        bed.source,
        bed.proxied,
        work_dir=bed.work_dir,
        state_url=bed.state_url,
        run_id="r1",
        transfer=TRANSFER,
    )
    assert summary["state"] == "Completed"
    assert (summary["files_copied"], summary["files_skipped"], summary["files_failed"]) == (
        len(bed.files),
        0,
        0,
    )
    assert bed.recorded()["state"] == "Completed"
    assert bed.check("copying process SIGKILLed, run resumed").ok == len(bed.files)
    assert REPORT_ROOT in summary["report_folder"]
