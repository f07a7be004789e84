"""One retry policy for every backend: what is worth another try, how long to wait, when to stop.

A migration meets servers that restart, proxies that answer 503 and connections that are
reset. Each backend says once which of its exceptions are transient (``transient=``); this
module decides the rest the same way for all of them, with tenacity (it ships with Airflow)
rather than hand-written loops:

* a *request* (one HEAD, one PUT of bytes in memory, one NFS open, one SMB compound) is
  tried again after a wait that doubles from ``first_wait`` up to ``max_wait``, with
  jitter so that many workers do not come back in step, for at most ``request_time``
  seconds;
* a *file* has a budget, ``file_time`` seconds from its first byte, shared by all its
  requests and by the whole-file retries of ``sharelift.transfer`` (a stream that broke
  half-way cannot be retried request by request: the file is read again).

The defaults ride out a server outage of a minute or more; tests pass short values through
``TransferConfig.retry``. Between two tries a backend may ``recover`` (drop a dead
connection so that the next try connects again).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import tenacity

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried. Times in seconds.

    ``first_wait``/``max_wait``: the wait after the first failure, doubling up to the cap
    (plus up to ``first_wait`` of random jitter). ``request_time``: how long one request
    keeps trying. ``file_time``: how long one file keeps trying, all requests and re-reads
    together. ``stable_reads``: how many times a file that changes while it is read is read
    again before it fails as "kept changing while being read".
    """

    first_wait: float = 0.5
    max_wait: float = 8.0
    request_time: float = 90.0
    file_time: float = 300.0
    stable_reads: int = 3

    def __post_init__(self) -> None:
        from sharelift.errors import ConfigError

        if not 0 < self.first_wait <= self.max_wait:
            raise ConfigError("retry.first_wait", "must be above 0 and at most retry.max_wait")
        if self.request_time < 0:
            raise ConfigError("retry.request_time", "must not be negative")
        if self.file_time < self.request_time:
            raise ConfigError("retry.file_time", "must be at least retry.request_time")
        if not 1 <= self.stable_reads <= 100:
            raise ConfigError("retry.stable_reads", "must be between 1 and 100")

    def wait(self) -> tenacity.wait.wait_base:
        return tenacity.wait_exponential(
            multiplier=self.first_wait, max=self.max_wait
        ) + tenacity.wait_random(0, self.first_wait)


NO_RETRY = RetryPolicy(first_wait=0.01, max_wait=0.01, request_time=0, file_time=0)
"""Fail at the first error (tests of permanent failures, callers that retry themselves)."""


@dataclass(frozen=True, slots=True)
class _FileScope:
    policy: RetryPolicy
    deadline: float  # time.monotonic() after which no new try starts


_scope: contextvars.ContextVar[_FileScope | None] = contextvars.ContextVar(
    "sharelift_retry_scope", default=None
)
_default = RetryPolicy()


@contextlib.contextmanager
def file_scope(policy: RetryPolicy) -> Iterator[_FileScope]:
    """Requests made inside (in this thread, or in threads started with ``in_scope``) use
    ``policy`` and share one budget of ``policy.file_time`` seconds."""
    scope = _FileScope(policy, time.monotonic() + policy.file_time)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def in_scope(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` bound to the caller's retry scope, for running it on a pool thread."""
    ctx = contextvars.copy_context()
    return lambda *args, **kwargs: ctx.run(fn, *args, **kwargs)


def current_policy() -> RetryPolicy:
    scope = _scope.get()
    return scope.policy if scope is not None else _default


def policy_of(owner: object) -> RetryPolicy:
    """The policy a destination or source was configured with (its ``transfer.retry``),
    the default for one that has none."""
    policy = getattr(getattr(owner, "transfer", None), "retry", None)
    return policy if isinstance(policy, RetryPolicy) else _default


def budget_left() -> float:
    """Seconds the current file may still spend retrying (the request time outside a file)."""
    scope = _scope.get()
    if scope is None:
        return _default.request_time
    return max(0.0, scope.deadline - time.monotonic())


class _stop_at_file_deadline(tenacity.stop.stop_base):
    """Stop when the next wait would end past the current file's deadline."""

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        scope = _scope.get()
        if scope is None:
            return False
        return time.monotonic() + (retry_state.upcoming_sleep or 0.0) >= scope.deadline


def call(
    fn: Callable[[], T],
    *,
    transient: Callable[[BaseException], bool],
    recover: Callable[[], None] | None = None,
    what: str = "request",
    whole_file: bool = False,
) -> T:
    """Run ``fn``; while it raises what ``transient`` accepts, wait and run it again.

    The last exception propagates unchanged once the request's time or the file's budget
    is spent, or at once for an error ``transient`` rejects. ``recover`` runs before each
    new try and must not raise (it only drops state; the next try reconnects).
    ``whole_file``: ``fn`` copies a whole file, limited by the file's budget only."""
    policy = current_policy()
    started = time.monotonic()
    # The first try runs bare: tenacity's machinery costs tens of microseconds a call,
    # which small files (several requests each) would pay for nothing when all is well.
    try:
        return fn()
    except BaseException as exc:
        if not transient(exc):
            raise
        failures = [exc]

    def again() -> T:
        if failures:  # tenacity's first try: the failure already met
            raise failures.pop()
        return fn()

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.debug(
            "%s failed (%s), try %d again in %.1f s",
            what,
            describe(exc),
            state.attempt_number + 1,
            state.upcoming_sleep,
        )
        if recover is not None:
            recover()

    limit = policy.file_time if whole_file else policy.request_time
    retrying = tenacity.Retrying(
        stop=_stop_at(started + limit) | _stop_at_file_deadline(),
        wait=policy.wait(),
        retry=tenacity.retry_if_exception(transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(again)


class _stop_at(tenacity.stop.stop_base):
    """Stop when the next wait would end past ``deadline`` (``time.monotonic()``)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return time.monotonic() + (retry_state.upcoming_sleep or 0.0) >= self.deadline


def describe(exc: BaseException | None) -> str:
    """A never-empty one-line description of ``exc`` (its class when it says nothing)."""
    if exc is None:
        return "no error"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
