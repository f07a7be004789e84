"""How many mapped copy tasks a run's subtasks go into: small subtasks share tasks, down to
one per slot of the copy pool; enough work keeps a task per subtask."""

from __future__ import annotations

import pytest

from sharelift.airflow import tasks
from sharelift.engine.partition import Subtask

GIB = 1024**3


def subtasks(count: int, files: int, size: int) -> list[Subtask]:
    return [Subtask(i, i * files, (i + 1) * files, files, size) for i in range(count)]


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def slots(n: int, max_tasks: int = 1024) -> None:
        monkeypatch.setattr(tasks, "copy_pool_slots", lambda: n)
        monkeypatch.setattr(tasks, "copy_tasks", lambda: max_tasks)

    return slots


def test_ten_subtasks_of_small_files_share_the_four_slots_of_the_pool(pool) -> None:  # type: ignore[no-untyped-def]
    pool(4)
    assert tasks.copy_task_count(subtasks(10, 1000, 30 * 10**6)) == 4


def test_fewer_subtasks_than_slots_keep_a_task_each(pool) -> None:  # type: ignore[no-untyped-def]
    pool(4)
    assert tasks.copy_task_count(subtasks(3, 1000, 10**6)) == 3
    assert tasks.copy_task_count(subtasks(1, 0, 0)) == 1


@pytest.mark.parametrize(
    ("count", "files", "size", "expected"),
    [
        (50, 1000, 10**6, 5),  # 50,000 files: 10,000 per task
        (30, 10, GIB, 8),  # 30 GiB: 4 GiB per task
        (10_000, 1000, 10**6, 1000),
    ],
)
def test_subtasks_holding_more_work_than_the_pool_spread_over_more_tasks(
    pool,  # type: ignore[no-untyped-def]
    count: int,
    files: int,
    size: int,
    expected: int,
) -> None:
    pool(4)
    assert tasks.copy_task_count(subtasks(count, files, size)) == expected


def test_never_more_tasks_than_airflow_maps(pool) -> None:  # type: ignore[no-untyped-def]
    pool(4, max_tasks=5)
    assert tasks.copy_task_count(subtasks(10_000, 1000, 10**6)) == 5


@pytest.mark.parametrize(
    ("value", "slots"), [("4", 4), ("20", 20), ("64", 20), ("0", 20), ("x", 20)]
)
def test_the_pool_slots_come_from_the_variable_airflow_setup_records(
    monkeypatch: pytest.MonkeyPatch, value: str, slots: int
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_SHARELIFT_COPY_POOL_SLOTS", value)
    assert tasks.copy_pool_slots() == slots


def test_without_the_variable_a_run_counts_on_its_limit_of_20(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AIRFLOW_VAR_SHARELIFT_COPY_POOL_SLOTS", raising=False)
    assert tasks.copy_pool_slots() == 20
