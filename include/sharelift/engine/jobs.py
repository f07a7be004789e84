"""A job: what to migrate, from where to where, and how to split it (docs/jobs.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sharelift.errors import ConfigError

if TYPE_CHECKING:
    from sharelift.storage.retrying import RetryPolicy

JOB_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]$")
JOB_NAME_RULE = "3-63 lowercase letters, digits and '-', not starting or ending with '-'"
MigrationType = Literal["full", "incremental", "sync"]

DEFAULT_SUBTASK_FILES = 1000
DEFAULT_SUBTASK_BYTES = 1024**3
# How long one request, and one file, keep trying through transient failures (a server
# restarting, a network blip): enough to ride out a server that is gone for a minute.
DEFAULT_RETRY_REQUEST_SECONDS = 90
DEFAULT_RETRY_FILE_SECONDS = 300
MAX_RETRY_SECONDS = 86_400


def validate_job_name(name: str) -> str:
    if not isinstance(name, str) or not JOB_NAME_RE.match(name):
        raise ConfigError("job_name", f"must be {JOB_NAME_RULE} (got {name!r})")
    return name


def parse_start_time(value: Any, field_name: str = "start_time") -> datetime | None:
    """``None``/``""``/``"All"`` mean every file; otherwise an ISO datetime (UTC if naive)."""
    if value in (None, "", "All", "all"):
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                field_name,
                f"must be 'All' or an ISO date-time like 2024-01-31T08:00:00 (got {value!r})",
            ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class JobSpec:
    """Everything a run needs to know, validated on construction.

    ``source``/``destination`` are address (connection) ids; ``source_path`` narrows the
    source to a sub-folder. ``start_time`` ``None`` = All files; otherwise only files whose
    last-modified time is later than it. A subtask closes at ``subtask_files`` files or
    ``subtask_bytes`` bytes, whichever comes first.
    """

    name: str
    source: str
    destination: str
    source_path: str = ""
    migration_type: MigrationType = "full"
    start_time: datetime | None = None
    subtask_files: int = DEFAULT_SUBTASK_FILES
    subtask_bytes: int = DEFAULT_SUBTASK_BYTES
    include: tuple[str, ...] = field(default_factory=tuple)
    exclude: tuple[str, ...] = field(default_factory=tuple)
    dry_run: bool = False
    estimated_files: int | None = None
    estimated_bytes: int | None = None
    # Incremental jobs (docs/jobs.md): run 1 is full, runs 2..N take the changes since
    # the start of the previous run; the interval counts from the end of the previous run.
    interval_hours: int = 1
    migration_times: int = 1
    run_number: int = 1
    # A retry migrates exactly the error list of this earlier run of the same job.
    retry_of: str | None = None
    retry_request_seconds: int = DEFAULT_RETRY_REQUEST_SECONDS
    retry_file_seconds: int = DEFAULT_RETRY_FILE_SECONDS

    def __post_init__(self) -> None:
        validate_job_name(self.name)
        for fname in ("source", "destination"):
            if not getattr(self, fname):
                raise ConfigError(fname, "is required (an address / connection id)")
        if self.migration_type not in ("full", "incremental", "sync"):
            raise ConfigError(
                "migration_type", f"must be full, incremental or sync (got {self.migration_type!r})"
            )
        object.__setattr__(self, "start_time", parse_start_time(self.start_time))
        if not isinstance(self.subtask_files, int) or not 1 <= self.subtask_files <= 1_000_000:
            raise ConfigError(
                "subtask_file_count",
                f"must be an integer from 1 to 1,000,000 (got {self.subtask_files!r})",
            )
        if not isinstance(self.subtask_bytes, int) or self.subtask_bytes < 1024 * 1024:
            raise ConfigError(
                "subtask_file_size", f"must be at least 1 MiB in bytes (got {self.subtask_bytes!r})"
            )
        if not isinstance(self.interval_hours, int) or not 1 <= self.interval_hours <= 24:
            raise ConfigError(
                "migration_interval_hours",
                f"must be an integer from 1 to 24 (got {self.interval_hours!r})",
            )
        if not isinstance(self.migration_times, int) or not 1 <= self.migration_times <= 30:
            raise ConfigError(
                "migration_times", f"must be an integer from 1 to 30 (got {self.migration_times!r})"
            )
        if not isinstance(self.run_number, int) or not 1 <= self.run_number <= self.migration_times:
            raise ConfigError(
                "run_number",
                f"must be from 1 to migration_times ({self.migration_times}) (got {self.run_number!r})",
            )
        for fname, value in (
            ("retry_request_seconds", self.retry_request_seconds),
            ("retry_file_seconds", self.retry_file_seconds),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 0 <= value <= MAX_RETRY_SECONDS
            ):
                raise ConfigError(
                    fname, f"must be an integer from 0 to {MAX_RETRY_SECONDS:,} (got {value!r})"
                )
        if self.retry_file_seconds < self.retry_request_seconds:
            raise ConfigError(
                "retry_file_seconds",
                f"must be at least retry_request_seconds ({self.retry_request_seconds}) "
                f"(got {self.retry_file_seconds})",
            )
        object.__setattr__(self, "include", tuple(self.include or ()))
        object.__setattr__(self, "exclude", tuple(self.exclude or ()))
        from sharelift.engine.filters import validate_patterns

        validate_patterns(self.include, "include")
        validate_patterns(self.exclude, "exclude")

    @property
    def retry_policy(self) -> RetryPolicy:
        """The job's retry settings as the backends use them (waits keep their defaults)."""
        from sharelift.storage.retrying import RetryPolicy

        return RetryPolicy(
            request_time=float(self.retry_request_seconds),
            file_time=float(self.retry_file_seconds),
        )

    @property
    def start_time_ns(self) -> int | None:
        return None if self.start_time is None else int(self.start_time.timestamp() * 1e9)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form (XCom, state database). Holds no secret: addresses are ids."""
        return {
            "name": self.name,
            "source": self.source,
            "destination": self.destination,
            "source_path": self.source_path,
            "migration_type": self.migration_type,
            "start_time": self.start_time.isoformat() if self.start_time else None,
            "subtask_files": self.subtask_files,
            "subtask_bytes": self.subtask_bytes,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "dry_run": self.dry_run,
            "estimated_files": self.estimated_files,
            "estimated_bytes": self.estimated_bytes,
            "interval_hours": self.interval_hours,
            "migration_times": self.migration_times,
            "run_number": self.run_number,
            "retry_of": self.retry_of,
            "retry_request_seconds": self.retry_request_seconds,
            "retry_file_seconds": self.retry_file_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("include", "exclude"):
            if key in known:
                known[key] = tuple(known[key] or ())
        return cls(**known)
