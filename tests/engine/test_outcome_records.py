"""Recording per-file outcomes: every field reads back as recorded, and recording a path
again replaces its row (a re-run subtask overwrites its own outcomes), on SQLite and on
PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharelift.engine.state import OutcomeRow, StateStore, outcomes

CRC = 2**64 - 5  # above a signed BIGINT: kept as text


def row(path: str, status: str = "copied", reason: str = "") -> OutcomeRow:
    return OutcomeRow(path, f"pre/{path}", 3, status, 42, 1_700_000_000_123_456_789, CRC,
                      reason, 1.5, 2.5, "etag-1")  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    state = StateStore(url)
    try:
        yield state
    finally:
        state.close()


def test_every_field_of_a_recorded_outcome_reads_back(store: StateStore) -> None:
    store.record("job", "run", [row("a/b.bin")])

    (got,) = list(store.iter_outcomes("job", "run"))

    assert got == {
        "job": "job",
        "run_id": "run",
        "path": "a/b.bin",
        "object_key": "pre/a/b.bin",
        "subtask": 3,
        "status": "copied",
        "size": 42,
        "mtime_ns": 1_700_000_000_123_456_789,
        "crc64": str(CRC),
        "reason": "",
        "started_at": 1.5,
        "finished_at": 2.5,
        "verified": False,
        "etag": "etag-1",
        "unverified": None,
    }
    assert set(got) == set(outcomes.c.keys())


def test_recording_a_path_again_replaces_its_outcome(store: StateStore) -> None:
    store.record("job", "run", [row("a.bin", "failed", "timed out"), row("b.bin")])
    store.mark("job", "run", [{"path": "b.bin", "verified": True}])

    store.record("job", "run", [row("a.bin"), row("b.bin")])

    got = {o["path"]: o for o in store.iter_outcomes("job", "run")}
    assert sorted(got) == ["a.bin", "b.bin"]
    assert (got["a.bin"]["status"], got["a.bin"]["reason"]) == ("copied", "")
    assert got["b.bin"]["verified"] is False
    assert store.done_paths("job", "run", 3).keys() == {"a.bin", "b.bin"}


def test_outcomes_of_other_runs_are_left_alone(store: StateStore) -> None:
    store.record("job", "run-1", [row("a.bin", "failed", "gone")])

    store.record("job", "run-2", [row("a.bin")])

    assert [o["status"] for o in store.iter_outcomes("job", "run-1")] == ["failed"]
    assert [o["status"] for o in store.iter_outcomes("job", "run-2")] == ["copied"]


def test_marking_sets_only_the_columns_given_for_the_paths_given(store: StateStore) -> None:
    store.record("job", "run", [row("a.bin"), row("b.bin"), row("c.bin")])

    store.mark(
        "job",
        "run",
        [
            {"path": "a.bin", "verified": True, "unverified": None},
            {"path": "b.bin", "status": "failed", "reason": "verification failed: size"},
        ],
    )

    got = {o["path"]: o for o in store.iter_outcomes("job", "run")}
    assert (got["a.bin"]["status"], got["a.bin"]["verified"]) == ("copied", True)
    assert (got["b.bin"]["status"], got["b.bin"]["reason"]) == (
        "failed",
        "verification failed: size",
    )
    assert got["b.bin"]["verified"] is False
    assert got["c.bin"] == {**got["c.bin"], "status": "copied", "verified": False}
    assert [o["path"] for o in store.iter_outcomes("job", "run", status="failed")] == ["b.bin"]
