"""Flow control (docs/flow-control.md): a job-wide bandwidth limit by time of day, changed live.

The setting
    A job's flow control is a list of entries ``HH:MM-HH:MM=MB/s``; outside every entry
    the job runs unthrottled. Ranges are half-open (``08:00-18:00`` covers 08:00:00 up to,
    not including, 18:00:00); ``24:00`` may end a range; a range whose end is before its
    start crosses midnight (``22:00-06:00`` is a night window), because night windows are
    what operators ask for most. Ranges must not overlap, so exactly one limit (or none)
    applies at any instant. MB is 10**6 bytes, like the throughput figures in the reports.

    Times are read in the IANA time zone stored WITH the setting (default ``UTC``, never
    "the local time of whichever machine reads it": workers, the scheduler and the
    operator's laptop may each be set differently, and a limit must mean the same thing
    on all of them).

    The setting lives in the state database (``sharelift_flow_control``), not in DAG
    params: params are frozen when a run is triggered, and the point is to change the
    limit of a run that is already going (the reference service needs a stop and
    restart). ``sharelift flow-control set/show/clear`` edits it.

Keeping the sum of all subtasks under the limit
    The copy tasks of one job are separate processes, possibly on several machines that
    share nothing but the state database, so they coordinate through it:

    * each running subtask holds a lease row (``sharelift_flow_leases``) that it renews
      every second (``beat`` + 1) and in which it publishes the rate it currently allows
      itself;
    * its target is an equal share, ``limit / live subtasks`` (all runs of the job count:
      the limit is for the job);
    * it may lower its rate at once, but RAISE it only into headroom nobody else has
      claimed: ``new = min(target, max(claimed_by_me, limit - sum(others' published)))``.
      A refresh is one transaction that writes first (SQLite: the write lock; PostgreSQL:
      the setting row FOR UPDATE), so the refreshes of a job are serialized and each sees
      every claim committed before it: the published rates never sum above the limit.
      A newly joined subtask has claimed 0 and starts at ``min(target, headroom)``, which
      is 0 while the others still use the whole limit; they see it within a second, step
      down to the new share, and it then takes the freed headroom (about 2 s to settle).
      A leaving subtask deletes its lease, freeing its share within a second;
    * liveness does not trust clocks across machines: a lease is live while its ``beat``
      keeps changing, measured on the reader's own monotonic clock. A crashed worker
      stops counting ``LEASE_TTL`` seconds after its last beat.

    Each subtask then meters the bytes it reads from the source through a token bucket
    at its rate (0.25 s of burst; a debt model, so a 1 MiB read costs 1 MiB of tokens
    even when the bucket is smaller). A limit change reaches every subtask at its next
    refresh (1 s) and a sleeping reader wakes up at once to the new rate.

    What can still exceed the limit, briefly: a LOWERED limit is exceeded until each
    subtask's next refresh (1 s); a subtask stalled for longer than ``LEASE_TTL`` is
    taken for dead and its share handed out, and it runs at its old rate for up to a
    second when it comes back; and within a second each subtask may be one read (1 MiB
    by default) ahead, because bytes are charged as they arrive.

    Without a limit in effect ``consume`` returns at once (one attribute read); the
    lease is still renewed in the background (every 2 s when the job has no setting at
    all) so the live count is right the moment an operator sets a limit.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sharelift.engine.migrations import upgrade_to_head
from sharelift.engine.state import StateStore, flow_leases, flow_settings, metadata
from sharelift.errors import ConfigError

log = logging.getLogger(__name__)

MB = 1_000_000
FIELD = "flow_control"
DEFAULT_TIMEZONE = "UTC"
REFRESH_SECONDS = 1.0  # a job with a flow-control setting: how often a subtask re-reads it
IDLE_REFRESH_SECONDS = 2.0  # a job without one: only the lease is renewed
LEASE_TTL = 5.0  # a lease whose beat has not changed for this long is dead
BURST_SECONDS = 0.25  # token bucket size, in seconds of the subtask's rate
LEASE_GC_SECONDS = 300.0  # rows of crashed workers are deleted after this (wall clock)

# -- the setting: parsing and validation ------------------------------------------

_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_ENTRY_RE = re.compile(r"^\s*([^-=\s]+)\s*-\s*([^-=\s]+)\s*=\s*(\S+?)\s*$")
DAY = 24 * 60


def _minutes(text: str, entry: str, *, is_end: bool) -> int:
    m = _TIME_RE.match(text)
    if m:
        hours, minutes = int(m.group(1)), int(m.group(2))
        if (hours < 24 and minutes < 60) or (is_end and hours == 24 and minutes == 0):
            return hours * 60 + minutes
    raise ConfigError(
        FIELD,
        f"times must be HH:MM from 00:00 to 23:59 (24:00 only as an end) (got {text!r} in {entry!r})",
    )


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _limit_text(mb_per_s: float) -> str:
    return f"{mb_per_s:g}"


@dataclass(frozen=True, slots=True)
class FlowRule:
    """One entry: from ``start`` to ``end`` (minutes of the day) at most ``mb_per_s``.

    ``end`` is 1..1440; ``end < start`` means the range crosses midnight.
    """

    start: int
    end: int
    mb_per_s: float

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def spans(self) -> list[tuple[int, int]]:
        """The range as half-open minute intervals within one day (two when it wraps)."""
        if self.crosses_midnight:
            return [(self.start, DAY), (0, self.end)]
        return [(self.start, self.end)]

    def covers(self, seconds_of_day: float) -> bool:
        minute = seconds_of_day / 60.0
        return any(a <= minute < b for a, b in self.spans())

    @property
    def text(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}={_limit_text(self.mb_per_s)}"


@dataclass(frozen=True, slots=True)
class FlowControl:
    """A job's validated flow-control setting; construction is the validation."""

    rules: tuple[FlowRule, ...]
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        zone = validate_timezone(self.timezone)
        object.__setattr__(self, "timezone", zone)
        if not self.rules:
            raise ConfigError(FIELD, "needs at least one entry (use 'clear' to remove the limit)")
        for rule in self.rules:
            _check_limit(rule.mb_per_s, rule.text)
            if not (0 <= rule.start < DAY and 0 < rule.end <= DAY) or rule.start == rule.end:
                raise ConfigError(FIELD, f"entry {rule.text!r} is not a valid time range")
        for i, a in enumerate(self.rules):
            for b in self.rules[:i]:
                if any(x0 < y1 and y0 < x1 for x0, x1 in a.spans() for y0, y1 in b.spans()):
                    raise ConfigError(
                        FIELD,
                        f"time ranges must not overlap: {b.text!r} and {a.text!r} "
                        "(one limit must apply at any moment)",
                    )

    @classmethod
    def parse(cls, text: str, timezone: str | None = None) -> FlowControl:
        """Parse ``"08:00-18:00=10,18:00-08:00=50"`` (MB/s per time range of the day)."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(FIELD, "needs at least one entry like 08:00-18:00=10 (MB/s)")
        rules = []
        for raw in text.split(","):
            entry = raw.strip()
            m = _ENTRY_RE.match(entry)
            if not m:
                raise ConfigError(
                    FIELD,
                    f"each entry must look like HH:MM-HH:MM=MB/s, e.g. 08:00-18:00=10 (got {entry!r})",
                )
            start = _minutes(m.group(1), entry, is_end=False)
            end = _minutes(m.group(2), entry, is_end=True)
            if start == end or (start == 0 and end == 0):
                raise ConfigError(
                    FIELD,
                    f"a time range must not be empty (got {entry!r}; use 00:00-24:00 for the whole day)",
                )
            try:
                limit = float(m.group(3))
            except ValueError:
                raise ConfigError(
                    FIELD, f"the limit must be a number of MB/s (got {m.group(3)!r} in {entry!r})"
                ) from None
            _check_limit(limit, entry)
            rules.append(FlowRule(start, end, limit))
        return cls(tuple(rules), timezone or DEFAULT_TIMEZONE)

    @property
    def text(self) -> str:
        return ",".join(r.text for r in self.rules)

    def rule_at(self, when: datetime | None = None) -> FlowRule | None:
        """The entry in effect at ``when`` (default: now), read in the setting's zone."""
        when = when or datetime.now(UTC)
        if when.tzinfo is None:
            raise ValueError("rule_at needs an aware datetime")
        local = when.astimezone(ZoneInfo(self.timezone))
        seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        for rule in self.rules:
            if rule.covers(seconds):
                return rule
        return None

    def limit_at(self, when: datetime | None = None) -> float | None:
        """MB/s in effect at ``when``; ``None`` = unthrottled (outside every range)."""
        rule = self.rule_at(when)
        return None if rule is None else rule.mb_per_s

    def to_row(self) -> dict[str, Any]:
        rules = [{"start": r.start, "end": r.end, "mb_per_s": r.mb_per_s} for r in self.rules]
        return {"rules": json.dumps(rules), "timezone": self.timezone}

    @classmethod
    def from_row(cls, row: Any) -> FlowControl:
        rules = tuple(
            FlowRule(int(r["start"]), int(r["end"]), float(r["mb_per_s"]))
            for r in json.loads(row["rules"])
        )
        return cls(rules, row["timezone"])


def _check_limit(limit: float, entry: str) -> None:
    if not math.isfinite(limit) or limit <= 0:
        raise ConfigError(
            FIELD, f"the limit must be a number of MB/s greater than 0 (got {entry!r})"
        )


def validate_timezone(name: str | None) -> str:
    """An IANA zone name like ``Asia/Shanghai`` or ``UTC``; anything else is a ConfigError."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("timezone", "must be an IANA time zone name like Asia/Shanghai or UTC")
    name = name.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            "timezone", f"must be an IANA time zone name like Asia/Shanghai or UTC (got {name!r})"
        ) from None
    return name


# -- the setting: storage -----------------------------------------------------------


def _engine(store: StateStore | Engine) -> Engine:
    """The engine, its schema current (a StateStore saw to that when it opened)."""
    if isinstance(store, StateStore):
        return store.engine
    upgrade_to_head(store, metadata)
    return store


def set_flow_control(store: StateStore | Engine, job: str, setting: FlowControl) -> None:
    """Store (replace) a job's setting; running subtasks pick it up within a second."""
    from sharelift.engine.jobs import validate_job_name

    validate_job_name(job)
    engine = _engine(store)
    values = {**setting.to_row(), "updated_at": time.time()}
    with engine.begin() as conn:
        done = conn.execute(
            flow_settings.update().where(flow_settings.c.job == job).values(**values)
        ).rowcount
        if not done:
            conn.execute(flow_settings.insert().values(job=job, **values))


def get_flow_control(store: StateStore | Engine, job: str) -> FlowControl | None:
    with _engine(store).connect() as conn:
        row = (
            conn.execute(sa.select(flow_settings).where(flow_settings.c.job == job))
            .mappings()
            .first()
        )
    return FlowControl.from_row(row) if row else None


def setting_updated_at(store: StateStore | Engine, job: str) -> float | None:
    with _engine(store).connect() as conn:
        return conn.execute(
            sa.select(flow_settings.c.updated_at).where(flow_settings.c.job == job)
        ).scalar()


def clear_flow_control(store: StateStore | Engine, job: str) -> bool:
    """Remove the setting (the job runs unthrottled); False when there was none."""
    with _engine(store).begin() as conn:
        return bool(conn.execute(flow_settings.delete().where(flow_settings.c.job == job)).rowcount)


def jobs_with_flow_control(store: StateStore | Engine) -> set[str]:
    """Jobs with a setting or a subtask lease: known to the state database even before
    their first run is recorded (a limit set ahead with ``--new-job``)."""
    with _engine(store).connect() as conn:
        found = conn.execute(sa.union(sa.select(flow_settings.c.job), sa.select(flow_leases.c.job)))
        return {row[0] for row in found}


def running_subtasks(store: StateStore | Engine, job: str) -> list[dict[str, Any]]:
    """Leases renewed in the last ``LEASE_TTL`` seconds by the wall clock (for display)."""
    cutoff = time.time() - LEASE_TTL
    q = (
        sa.select(flow_leases)
        .where(flow_leases.c.job == job, flow_leases.c.last_seen >= cutoff)
        .order_by(flow_leases.c.run_id, flow_leases.c.subtask)
    )
    with _engine(store).connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


# -- the throttle -------------------------------------------------------------------


class JobThrottle:
    """One per running subtask: holds its lease and meters the bytes it reads.

    ``start()`` registers the lease and takes a first rate before any byte is read;
    ``consume(n)`` blocks as long as the subtask is ahead of its rate; ``close()`` gives
    the share back to the job's other subtasks. Thread-safe (a multipart upload may run
    a reader next to its part uploads).
    """

    def __init__(
        self,
        store: StateStore | Engine,
        job: str,
        run_id: str = "",
        subtask: int | None = None,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        idle_refresh_seconds: float = IDLE_REFRESH_SECONDS,
        lease_ttl: float = LEASE_TTL,
        burst_seconds: float = BURST_SECONDS,
    ) -> None:
        self.engine = _engine(store)
        self.job = job
        self.run_id = run_id
        self.subtask = subtask
        self.holder = uuid.uuid4().hex
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.refresh_seconds = refresh_seconds
        self.idle_refresh_seconds = idle_refresh_seconds
        self.lease_ttl = lease_ttl
        self.burst_seconds = burst_seconds
        self.limit: float | None = None  # bytes/s for the whole job, None = unthrottled
        self.live: int = 1  # live subtasks of the job (self included) at the last refresh
        self.has_setting = False
        self._rate: float | None = None  # bytes/s for this subtask
        self._published: float | None = 0.0  # what the others see in our lease
        self._tokens = 0.0
        self._last = time.monotonic()
        self._cond = threading.Condition()
        self._seen: dict[str, tuple[int, float]] = {}  # holder -> (beat, monotonic when changed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_gc = 0.0
        self.waited = 0.0  # seconds consume() has slept, for logs and tests

    # lifecycle

    def start(self) -> JobThrottle:
        """Register the lease and take a first rate (before any byte is read)."""
        self.refresh()
        self._thread = threading.Thread(
            target=self._loop, name=f"sharelift-throttle-{self.job}", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop metering and delete the lease; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        try:
            with self.engine.begin() as conn:
                conn.execute(flow_leases.delete().where(flow_leases.c.holder == self.holder))
        except Exception:  # noqa: BLE001 - an unreleased lease expires by itself
            log.warning("could not release the flow-control lease of %s", self.job, exc_info=True)

    def __enter__(self) -> JobThrottle:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def rate(self) -> float | None:
        """Bytes/s this subtask allows itself now (None = unthrottled)."""
        return self._rate

    # metering

    def consume(self, nbytes: int) -> None:
        """Account ``nbytes`` read from the source; sleep while ahead of the rate."""
        if self._rate is None or nbytes <= 0:
            return
        with self._cond:
            self._refill()
            self._tokens -= nbytes
            started = time.monotonic()
            while self._tokens < 0 and self._rate is not None and not self._closed:
                rate = self._rate
                # Short waits: a limit raised meanwhile must not leave us asleep for long.
                wait = 0.5 if rate <= 0 else min(-self._tokens / rate, 0.5)
                self._cond.wait(wait)
                self._refill()
            self.waited += time.monotonic() - started

    def _refill(self) -> None:
        now = time.monotonic()
        rate = self._rate
        if rate:
            self._tokens = min(rate * self.burst_seconds, self._tokens + (now - self._last) * rate)
        self._last = now

    def _apply(self, rate: float | None) -> None:
        with self._cond:
            if rate == self._rate:
                return
            self._refill()
            if rate is None:
                self._tokens = 0.0
            elif self._rate is None:
                self._tokens = 0.0  # just throttled: no credit saved from unthrottled time
            else:
                self._tokens = min(self._tokens, rate * self.burst_seconds)
            self._rate = rate
            self._cond.notify_all()

    # coordination

    def _loop(self) -> None:
        while not self._stop.wait(
            self.refresh_seconds if self.has_setting else self.idle_refresh_seconds
        ):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a database hiccup must not stop the copy
                log.warning("flow control: refresh failed for %s", self.job, exc_info=True)

    def refresh(self) -> None:
        """Renew the lease, re-read the setting and the live subtasks, take our share.

        One transaction that WRITES FIRST: on SQLite the first write takes the database's
        write lock, on PostgreSQL the setting row is locked FOR UPDATE, so the refreshes
        of a job's subtasks are serialized and each one sees every claim committed before
        it. That is what keeps the sum of the published rates at or under the limit.
        """
        mono = time.monotonic()
        now = time.time()
        lease = flow_leases.c
        with self.engine.begin() as conn:
            renewed = conn.execute(
                flow_leases.update()
                .where(lease.holder == self.holder)
                .values(beat=lease.beat + 1, last_seen=now)
            ).rowcount
            if not renewed:  # joining (or our lease was collected while we were stalled)
                conn.execute(
                    flow_leases.insert().values(
                        holder=self.holder,
                        job=self.job,
                        run_id=self.run_id,
                        subtask=self.subtask,
                        worker=self.worker[:255],
                        beat=0,
                        rate=self._published,
                        started_at=now,
                        last_seen=now,
                    )
                )
            row = (
                conn.execute(
                    sa.select(flow_settings)
                    .where(flow_settings.c.job == self.job)
                    .with_for_update()
                )
                .mappings()
                .first()
            )
            leases = conn.execute(
                sa.select(lease.holder, lease.beat, lease.rate).where(
                    lease.job == self.job, lease.holder != self.holder
                )
            ).all()
            self.has_setting = row is not None
            limit_mb = FlowControl.from_row(row).limit_at() if row is not None else None
            limit = None if limit_mb is None else limit_mb * MB
            others = self._live_rates(leases, mono)
            self.live = len(others) + 1
            self.limit = limit
            new = self._share(limit, others)
            lowering = new is not None and (self._rate is None or new < self._rate)
            if lowering:
                self._apply(new)  # slow down before telling the others they may speed up
            conn.execute(flow_leases.update().where(lease.holder == self.holder).values(rate=new))
            if now - self._last_gc > 60:
                self._last_gc = now
                conn.execute(
                    flow_leases.delete().where(
                        lease.job == self.job, lease.last_seen < now - LEASE_GC_SECONDS
                    )
                )
        self._published = new
        if not lowering:
            self._apply(new)  # speed up only once the claim is committed

    def _live_rates(self, leases: Any, mono: float) -> list[float | None]:
        """Published rates of the other live leases: those whose beat changed lately."""
        rates: list[float | None] = []
        present = set()
        for holder, beat, rate in leases:
            present.add(holder)
            seen = self._seen.get(holder)
            if seen is None or seen[0] != beat:
                self._seen[holder] = (beat, mono)
            elif mono - seen[1] > self.lease_ttl:
                continue  # no beat for too long: a crashed worker
            rates.append(rate)
        for holder in list(self._seen):
            if holder not in present:
                del self._seen[holder]
        return rates

    def _share(self, limit: float | None, others: list[float | None]) -> float | None:
        """Our rate: an equal share, raised only into headroom nobody else has claimed."""
        if limit is None:
            return None
        target = limit / (len(others) + 1)
        # Others still unthrottled (NULL) will be at their share after their next refresh.
        claimed = sum(target if r is None else r for r in others)
        # We may keep what we have already claimed (0 for a newcomer); when a limit is
        # first set, all subtasks move from unthrottled (NULL) to their share together.
        floor = target if self._published is None else self._published
        new = min(target, max(floor, limit - claimed))
        return target if new > target * (1 - 1e-9) else max(0.0, new)


def open_throttle(
    store: StateStore | Engine, job: str, run_id: str, subtask: int | None = None
) -> JobThrottle:
    """A started ``JobThrottle`` for one running subtask of ``job``."""
    return JobThrottle(store, job, run_id, subtask).start()
