"""Whatever stops a run, the run's recorded state ends Failed (or Create Failed) with the
cause: the engine runner, which calls the DAG's own steps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.engine import copier
from sharelift.engine.jobs import JobSpec
from sharelift.engine.report import REPORT_ROOT
from sharelift.engine.runner import run_job
from sharelift.engine.state import StateStore
from sharelift.errors import ConfigError

JOB = JobSpec(name="ends", source="src", destination="dst", subtask_files=10)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Any]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    files = {f"d{i % 3}/f{i:03d}.bin": os.urandom(200 + i) for i in range(30)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    dst.mkdir()
    return {
        "files": files,
        "dst": dst,
        "source": SourceAddress(name="src", protocol="local", path=str(src)),
        "destination": DestinationAddress(name="dst", kind="local", path=str(dst), prefix="to/"),
        "work_dir": str(tmp_path / "work"),
        "state_url": f"sqlite:///{tmp_path / 'state.db'}",
    }


def run(env: dict[str, Any], job: JobSpec = JOB, run_id: str = "r1") -> dict[str, Any]:
    return run_job(
        job,
        env["source"],
        env["destination"],
        work_dir=env["work_dir"],
        state_url=env["state_url"],
        run_id=run_id,
        workers=1,
    )


def recorded(env: dict[str, Any], run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    state = StateStore(env["state_url"])
    try:
        return state.get_run(JOB.name, run_id) or {}, list(state.iter_outcomes(JOB.name, run_id))
    finally:
        state.close()


def assert_copied_exactly(env: dict[str, Any], outcomes: list[dict[str, Any]]) -> None:
    for o in outcomes:
        stored = env["dst"] / "to" / o["path"]
        if o["status"] == "copied":
            assert stored.read_bytes() == env["files"][o["path"]]
        else:
            assert (o["reason"] or "").strip()
            assert not stored.exists() or stored.read_bytes() == env["files"][o["path"]]


def test_a_retry_of_an_unknown_run_ends_failed_with_the_cause_not_scanning(env) -> None:  # type: ignore[no-untyped-def]
    job = JobSpec.from_dict({**JOB.to_dict(), "retry_of": "no-such-run"})
    with pytest.raises(ConfigError, match="no-such-run"):
        run(env, job, "r2")
    row, outcomes = recorded(env, "r2")
    assert row["state"] == "Failed"
    assert row["message"].startswith("scan failed: ")
    assert "no run 'no-such-run'" in row["message"]
    assert row["finished_at"] is not None
    assert outcomes == []


def test_a_copy_step_that_raises_ends_the_run_failed_with_its_files_listed(
    env, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    real_submit = copier._Copier.submit
    calls = {"n": 0}

    def crash_on_the_fifth_file(self, row, name, known_absent):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if self._subtask == 1 and calls["n"] > 14:
            raise RuntimeError("worker lost its mind")
        return real_submit(self, row, name, known_absent)

    monkeypatch.setattr(copier._Copier, "submit", crash_on_the_fifth_file)
    summary = run(env)
    monkeypatch.undo()

    assert summary["state"] == "Failed"
    row, outcomes = recorded(env, "r1")
    assert row["state"] == "Failed"
    failed = [o for o in outcomes if o["status"] == "failed"]
    assert failed and summary["files_failed"] == len(failed)
    assert {o["subtask"] for o in failed} == {1}
    assert all(
        o["reason"] == "subtask 1 did not finish: RuntimeError: worker lost its mind"
        for o in failed
    )
    errors = (env["dst"] / REPORT_ROOT / JOB.name / "r1" / f"{JOB.name}_error_list.txt").read_text()
    assert len(errors.splitlines()) == len(failed)
    assert "subtask 1 did not finish: RuntimeError: worker lost its mind" in errors
    assert_copied_exactly(env, outcomes)

    # A retry takes exactly those files and the chain ends Completed (files that were in
    # flight when the subtask died are stored already: "already migrated").
    retry = JobSpec.from_dict({**JOB.to_dict(), "retry_of": "r1"})
    again = run(env, retry, "r1-retry")
    assert again["state"] == "Completed"
    assert (again["files_copied"] + again["files_skipped"], again["files_failed"]) == (
        len(failed),
        0,
    )
    _, retried = recorded(env, "r1-retry")
    assert_copied_exactly(env, retried)


def test_files_of_a_subtask_whose_worker_died_are_listed_failed_naming_the_subtask(
    env, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A worker SIGKILLed mid-subtask records nothing on its way out: the report finds the
    subtask's files without an outcome and lists them, with the subtask's number."""
    from collections import Counter

    from sharelift.engine import steps

    real_copy = steps.copy

    def killed_in_subtask_1(run, subtask):  # type: ignore[no-untyped-def]
        return Counter() if subtask.index == 1 else real_copy(run, subtask)

    monkeypatch.setattr(steps, "copy", killed_in_subtask_1)
    summary = run(env)
    monkeypatch.undo()

    assert summary["state"] == "Failed"
    _, outcomes = recorded(env, "r1")
    failed = [o for o in outcomes if o["status"] == "failed"]
    assert len(failed) == 10 and {o["subtask"] for o in failed} == {1}
    assert {o["reason"] for o in failed} == {
        "not copied: its subtask 1 did not finish (its worker was killed or its copy task "
        "failed; see the copy task's log)"
    }
    assert_copied_exactly(env, outcomes)
