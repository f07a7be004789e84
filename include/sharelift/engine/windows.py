"""Which files a run takes, by last-modified time: the window of a run.

* Full and sync runs: files modified after the job's start time point (if any). Sync runs
  re-scan everything each period; the overwrite rule copies only what changed.
* Incremental run 1: files modified after the start time point and not after the start of
  this run. Run k > 1: files modified after the start of run k-1 and not after the start of
  run k. Windows are half-open and touch, so every change lands in exactly one run.

The bounds come from what actually ran (run start times in the state database, recorded
once, kept across task retries), never from the schedule, so a late or retried run
neither loses nor double-copies files.
"""

from __future__ import annotations

from dataclasses import dataclass

from sharelift.engine.jobs import JobSpec
from sharelift.engine.state import StateStore
from sharelift.errors import ConfigError


@dataclass(frozen=True)
class Window:
    newer_than_ns: int | None
    not_newer_than_ns: int | None

    def describe(self) -> str:
        from sharelift.engine.report import iso_ns

        lo = iso_ns(self.newer_than_ns) if self.newer_than_ns is not None else "the beginning"
        hi = iso_ns(self.not_newer_than_ns) if self.not_newer_than_ns is not None else "now"
        return f"files modified after {lo} and not after {hi}"


def window_for(
    state: StateStore, job: JobSpec, run_id: str, override: tuple[object, object] | None = None
) -> Window:
    """The window of ``run_id`` (recorded on first call; the same on every retry).

    ``override`` (start, end) datetimes: a backfill run's data interval.
    """
    run = state.get_run(job.name, run_id)
    if run is None:
        raise ValueError(f"run {run_id} of job {job.name} is not recorded")
    if run.get("window_end_ns") is not None or run.get("window_start_ns") is not None:
        return Window(run.get("window_start_ns"), run.get("window_end_ns"))
    started_ns = int(run["started_at"] * 1e9)
    if override is not None and override[0] is not None and override[1] is not None:
        lo, hi = (int(t.timestamp() * 1e9) for t in override)  # type: ignore[attr-defined]
        if job.start_time_ns is not None:
            lo = max(lo, job.start_time_ns)
        window = Window(lo, hi)
    elif job.migration_type != "incremental":
        window = Window(job.start_time_ns, None)
    elif job.run_number == 1:
        window = Window(job.start_time_ns, started_ns)
    else:
        previous = state.run_by_number(job.name, job.run_number - 1)
        if previous is None:
            raise ConfigError(
                "run_number",
                f"run {job.run_number - 1} of incremental job {job.name} is not recorded",
            )
        window = Window(int(previous["started_at"] * 1e9), started_ns)
    state.upsert_run(
        job.name,
        run_id,
        window_start_ns=window.newer_than_ns,
        window_end_ns=window.not_newer_than_ns,
    )
    return window
