"""The settings of a migration job, once: the trigger form's Params and the job files' checks
are both built from ``FIELDS``.

Why one table: the form and the files describe the same job. When each kept its own bounds,
a job file accepted ``subtask_file_size_mb: 1000000000000`` that the form refused. Here a
field's type, bounds, enum, pattern and rule are written once; ``FieldSpec.json_schema``
gives the form (Airflow validates it with jsonschema when a run is triggered) and
``FieldSpec.check`` the same rules in Python for job files, with the same message: the
field's ``rule``, which the form also shows under the field.

No Airflow import here: the table is plain data, and the Params are made in ``dag_factory``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sharelift.engine.jobs import (
    DEFAULT_RETRY_FILE_SECONDS,
    DEFAULT_RETRY_REQUEST_SECONDS,
    JOB_NAME_RE,
    JOB_NAME_RULE,
    MAX_RETRY_SECONDS,
)
from sharelift.errors import ConfigError
from sharelift.path_rules import PATTERNS, RULES, check_path

START_TIME_PATTERN = (
    r"^(All|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)$"
)
JsonType = Literal["string", "integer", "number", "boolean", "array"]
MIGRATION_TYPES = ("full", "incremental", "sync")


@dataclass(frozen=True)
class FieldSpec:
    """One setting. ``rule`` completes "must be ..." in errors and "Must be ..." in the form.

    ``form``/``file``: where the setting exists (the form has run-time fields, files have
    schedule and labelling fields). ``required``: a job file must give it. ``check`` adds a
    Python rule a JSON schema cannot state in full (the path rule's byte limit) and may
    normalise the value.
    """

    name: str
    type: JsonType | None  # None: any value; the caller parses it (sync settings)
    default: Any
    title: str
    section: str
    rule: str
    description: str = ""
    nullable: bool = False
    minimum: int | float | None = None
    maximum: int | float | None = None
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    min_length: int | None = None
    items: JsonType | None = None
    check: Callable[[Any, str], Any] | None = None
    form: bool = True
    file: bool = True
    required: bool = False

    def json_schema(self) -> dict[str, Any]:
        """The field's JSON schema (the keywords of an Airflow ``Param``)."""
        schema: dict[str, Any] = {}
        if self.type is not None:
            schema["type"] = ["null", self.type] if self.nullable else self.type
        for key, value in (
            ("minimum", self.minimum),
            ("maximum", self.maximum),
            ("pattern", self.pattern),
            ("minLength", self.min_length),
        ):
            if value is not None:
                schema[key] = value
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.items is not None:
            schema["items"] = {"type": self.items}
        schema["title"] = self.title
        schema["section"] = self.section
        return schema

    def form_description(self) -> str:
        return " ".join(p for p in (self.description, f"Must be {self.rule}.") if p)

    def check_value(self, value: Any) -> Any:
        """``value`` if it follows this field's rules (perhaps normalised), else
        ``ConfigError(name, "must be <rule> (got ...)")``: the form's rules, in Python."""
        if value is None and self.nullable:
            return None
        if self.type is not None and not _has_type(value, self.type):
            raise self._error(value)
        if self.type == "integer" and isinstance(value, float):
            value = int(value)  # 3.0 is the integer 3 in JSON schema
        if self.items is not None and not all(_has_type(v, self.items) for v in value):
            raise self._error(value)
        if self.minimum is not None and value < self.minimum:
            raise self._error(value)
        if self.maximum is not None and value > self.maximum:
            raise self._error(value)
        if self.enum is not None and value not in self.enum:
            raise self._error(value)
        if self.min_length is not None and len(value) < self.min_length:
            raise self._error(value)
        if self.pattern is not None and not re.search(self.pattern, value):
            raise self._error(value)
        if self.check is not None:
            return self.check(value, self.name)
        return value

    def _error(self, value: Any) -> ConfigError:
        return ConfigError(self.name, f"must be {self.rule} (got {value!r})")


def _has_type(value: Any, json_type: JsonType) -> bool:
    """JSON schema's types in Python terms (``True`` is not an integer; ``1.0`` is)."""
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "integer":
        if isinstance(value, float):
            return value.is_integer()
        return isinstance(value, int) and not isinstance(value, bool)
    if json_type == "number":
        if isinstance(value, float):
            return math.isfinite(value)
        return isinstance(value, int) and not isinstance(value, bool)
    if json_type == "string":
        return isinstance(value, str)
    return isinstance(value, list)


def _int_range(lo: int, hi: int | None = None) -> str:
    return f"an integer from {lo:,} to {hi:,}" if hi is not None else f"an integer of {lo} or more"


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "job_name",
        "string",
        "my-migration",
        "Job name",
        "Job",
        JOB_NAME_RULE,
        pattern=JOB_NAME_RE.pattern,
        required=True,
    ),
    FieldSpec(
        "source_conn_id",
        "string",
        "sharelift_source",
        "Source address",
        "Job",
        "the id of an Airflow connection (not empty)",
        description="Connection id of an NFS, SMB or local-folder address.",
        min_length=1,
        required=True,
    ),
    FieldSpec(
        "source_path",
        "string",
        "",
        "Source sub-folder",
        "Job",
        f"empty (the whole share) or {RULES['relative']}",
        description="Relative to the share; empty = the whole share.",
        pattern=PATTERNS["relative"],
        check=lambda v, f: check_path(v, f, "relative"),
    ),
    FieldSpec(
        "destination_conn_id",
        "string",
        "sharelift_destination",
        "Destination address",
        "Job",
        "the id of an Airflow connection (not empty)",
        description="Connection id of an OSS address (type oss) or a local bucket folder.",
        min_length=1,
        required=True,
    ),
    FieldSpec(
        "destination_prefix",
        "string",
        None,
        "Prefix",
        "Job",
        f"null (the address's own prefix) or {RULES['prefix']}, at most 1,023 bytes",
        description="Empty = bucket root; null = the address's own prefix.",
        nullable=True,
        pattern=PATTERNS["prefix"],
        check=lambda v, f: check_path(v, f, "prefix"),
    ),
    FieldSpec(
        "migration_type",
        "string",
        "full",
        "Migration type",
        "Job",
        "full, incremental or sync (sync only in a job file)",
        description="full: every file once (a re-run copies only changes). incremental: "
        "run 1 is full, then N-1 runs take the changes since the previous run's start.",
        enum=MIGRATION_TYPES,
    ),
    FieldSpec(
        "migration_interval_hours",
        "integer",
        1,
        "Migration interval (hours)",
        "Incremental",
        _int_range(1, 24),
        description="Incremental: hours from the END of one run to the start of the next.",
        minimum=1,
        maximum=24,
    ),
    FieldSpec(
        "migration_times",
        "integer",
        1,
        "Migration times (N)",
        "Incremental",
        _int_range(1, 30),
        description="Incremental: total number of runs, the first (full) one included.",
        minimum=1,
        maximum=30,
    ),
    FieldSpec(
        "run_number",
        "integer",
        1,
        "Run number",
        "Internal",
        _int_range(1, 30),
        description="Set by sharelift when it queues the next incremental run; leave at 1.",
        minimum=1,
        maximum=30,
        file=False,
    ),
    FieldSpec(
        "retry_of",
        "string",
        None,
        "Retry of run",
        "Retry",
        "null or the run id of a failed run of this job",
        description="Run id of a failed run of this job: migrate exactly the files of its "
        "error list (nothing already completed is copied again).",
        nullable=True,
        file=False,
    ),
    FieldSpec(
        "start_time",
        "string",
        "All",
        "Start time point of file",
        "Job",
        "'All' or an ISO date-time like 2024-01-31T08:00:00",
        description="Only files modified later are migrated.",
        pattern=START_TIME_PATTERN,
    ),
    FieldSpec(
        "subtask_file_count",
        "integer",
        1000,
        "Subtask file count",
        "Performance",
        _int_range(1, 1_000_000),
        minimum=1,
        maximum=1_000_000,
    ),
    FieldSpec(
        "subtask_file_size_mb",
        "integer",
        1024,
        "Subtask file size (MiB)",
        "Performance",
        _int_range(1, 10 * 1024 * 1024),
        minimum=1,
        maximum=10 * 1024 * 1024,
    ),
    FieldSpec(
        "retry_request_seconds",
        "integer",
        DEFAULT_RETRY_REQUEST_SECONDS,
        "Retry one request for (s)",
        "Performance",
        _int_range(0, MAX_RETRY_SECONDS),
        description="How long one request to a server keeps trying through transient "
        "failures (restarts, resets, 5xx), with waits that double up to 8 s.",
        minimum=0,
        maximum=MAX_RETRY_SECONDS,
    ),
    FieldSpec(
        "retry_file_seconds",
        "integer",
        DEFAULT_RETRY_FILE_SECONDS,
        "Retry one file for (s)",
        "Performance",
        _int_range(0, MAX_RETRY_SECONDS) + ", and at least retry_request_seconds",
        description="How long one file keeps trying, all its requests and re-reads "
        "together, before it fails with the last error.",
        minimum=0,
        maximum=MAX_RETRY_SECONDS,
    ),
    FieldSpec(
        "estimated_files",
        "integer",
        None,
        "Estimated file count",
        "Performance",
        "null or " + _int_range(0),
        nullable=True,
        minimum=0,
    ),
    FieldSpec(
        "estimated_size_gb",
        "number",
        None,
        "Estimated data size (GiB)",
        "Performance",
        "null or a number of 0 or more",
        nullable=True,
        minimum=0,
    ),
    FieldSpec(
        "include",
        "array",
        [],
        "Include patterns",
        "Filters",
        "a list of glob patterns",
        description="Globs like *.pdf or docs/**",
        items="string",
    ),
    FieldSpec(
        "exclude",
        "array",
        [],
        "Exclude patterns",
        "Filters",
        "a list of glob patterns",
        items="string",
    ),
    FieldSpec(
        "dry_run",
        "boolean",
        False,
        "Dry run",
        "Filters",
        "true or false",
        description="Scan and report what would be copied; copy nothing.",
    ),
    # Job files only: what a declared DAG is called and when it runs.
    FieldSpec("description", "string", "", "Description", "Job", "text", form=False),
    FieldSpec("tags", "array", [], "Tags", "Job", "a list of texts", items="string", form=False),
    FieldSpec(
        "sync_period",
        None,
        None,
        "Sync period",
        "Sync",
        "a number of hours, days or weeks like 6h, 2d, 1w",
        form=False,
    ),
    FieldSpec(
        "sync_start",
        None,
        "immediately",
        "Sync start",
        "Sync",
        "'immediately' or an ISO date-time",
        form=False,
    ),
    FieldSpec(
        "sync_no_overlap",
        "boolean",
        True,
        "Do not start a run while another is running",
        "Sync",
        "true or false",
        form=False,
    ),
)
BY_NAME = {spec.name: spec for spec in FIELDS}
FORM_FIELDS = tuple(spec for spec in FIELDS if spec.form)
FILE_FIELDS = tuple(spec for spec in FIELDS if spec.file)
