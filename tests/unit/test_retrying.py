"""The retry policy shared by every backend (pure logic: no server)."""

from __future__ import annotations

import time

import pytest

from sharelift.errors import ConfigError
from sharelift.storage import retrying
from sharelift.storage.retrying import RetryPolicy

QUICK = RetryPolicy(first_wait=0.001, max_wait=0.002, request_time=5.0, file_time=5.0)


class Flaky(Exception):
    pass


class Broken(Exception):
    pass


def failing(times: int, exc: type[Exception] = Flaky):  # type: ignore[no-untyped-def]
    calls = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise exc("try again")
        return "done"

    return fn, calls


def is_flaky(exc: BaseException) -> bool:
    return isinstance(exc, Flaky)


def test_a_transient_failure_is_tried_again_until_it_passes() -> None:
    fn, calls = failing(3)
    with retrying.file_scope(QUICK):
        assert retrying.call(fn, transient=is_flaky) == "done"
    assert len(calls) == 4


def test_a_permanent_failure_is_raised_at_once() -> None:
    fn, calls = failing(3, Broken)
    with retrying.file_scope(QUICK), pytest.raises(Broken):
        retrying.call(fn, transient=is_flaky)
    assert len(calls) == 1


def test_recover_runs_before_each_new_try() -> None:
    fn, _ = failing(2)
    recovered = []
    with retrying.file_scope(QUICK):
        retrying.call(fn, transient=is_flaky, recover=lambda: recovered.append(1))
    assert len(recovered) == 2


def test_a_request_gives_up_after_its_time_with_the_last_error() -> None:
    fn, calls = failing(10**9)
    policy = RetryPolicy(first_wait=0.01, max_wait=0.02, request_time=0.1, file_time=10.0)
    with retrying.file_scope(policy), pytest.raises(Flaky):
        retrying.call(fn, transient=is_flaky)
    assert 1 < len(calls) < 100


def test_the_files_budget_is_shared_by_its_requests() -> None:
    policy = RetryPolicy(first_wait=0.01, max_wait=0.02, request_time=0.15, file_time=0.2)
    with retrying.file_scope(policy):
        fn, _ = failing(10**9)
        with pytest.raises(Flaky):
            retrying.call(fn, transient=is_flaky)
        time.sleep(0.1)
        fn, calls = failing(10**9)
        with pytest.raises(Flaky):
            retrying.call(fn, transient=is_flaky)
    assert len(calls) == 1  # no budget left for a second try


def test_no_retry_tries_once() -> None:
    fn, calls = failing(1)
    with retrying.file_scope(retrying.NO_RETRY), pytest.raises(Flaky):
        retrying.call(fn, transient=is_flaky)
    assert len(calls) == 1


def test_in_scope_carries_the_files_policy_to_a_pool_thread() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with retrying.file_scope(QUICK), ThreadPoolExecutor(1) as pool:
        seen = pool.submit(retrying.in_scope(retrying.current_policy)).result()
    assert seen is QUICK


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"first_wait": 0}, "retry.first_wait"),
        ({"first_wait": 2, "max_wait": 1}, "retry.first_wait"),
        ({"request_time": 100, "file_time": 10}, "retry.file_time"),
        ({"stable_reads": 0}, "retry.stable_reads"),
    ],
)
def test_bad_settings_name_the_field(fields: dict[str, float], name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RetryPolicy(**fields)  # type: ignore[arg-type]
    assert caught.value.field == name


def test_describe_is_never_empty() -> None:
    assert retrying.describe(ConnectionResetError()) == "ConnectionResetError"
    assert retrying.describe(ValueError("bad")) == "ValueError: bad"
