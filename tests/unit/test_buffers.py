"""The byte budget that bounds the part buffers of one process, whatever the file sizes."""

from __future__ import annotations

import threading

import pytest

from sharelift.storage.buffers import ByteBudget


def test_a_take_waits_until_the_bytes_fit() -> None:
    budget = ByteBudget(100)
    budget.take(60)
    got = threading.Event()

    def second() -> None:
        budget.take(60)
        got.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not got.wait(0.2)  # 120 bytes would not fit
    budget.give(60)
    assert got.wait(5)
    thread.join()
    assert budget.used == 60
    assert budget.peak == 60


def test_more_than_the_whole_budget_is_granted_when_nothing_else_is_held() -> None:
    budget = ByteBudget(100)
    assert budget.take(250) == 250  # one part larger than the budget still goes, alone
    budget.give(250)
    assert budget.used == 0


def test_giving_back_more_than_was_taken_is_a_bug_that_shows() -> None:
    budget = ByteBudget(100)
    budget.take(10)
    with pytest.raises(RuntimeError, match="more bytes given back"):
        budget.give(20)
