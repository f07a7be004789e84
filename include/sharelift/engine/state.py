"""sharelift's own state database: runs and per-file outcomes (millions of rows).

Not Airflow's metadata database: Airflow 3 forbids tasks to touch it, and it is no place
for a row per file. The URL comes from an Airflow connection in the DAGs (SQLite by
default, PostgreSQL supported) and is plain SQLAlchemy here, so the engine runs without
Airflow. Writes are batched; SQLite runs in WAL mode with a busy timeout so that twenty
copy tasks can write at once.

The tables are declared here for the queries; their DDL is the migrations' (Alembic, in
``engine/migrations``): opening a store brings an older database to the current schema,
once per process.

CRC-64 values are unsigned 64-bit and do not fit a signed BIGINT: stored as text.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sharelift.engine.migrations import upgrade_to_head

metadata = sa.MetaData()

runs = sa.Table(
    "sharelift_runs",
    metadata,
    sa.Column("job", sa.String(63), primary_key=True),
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("migration_type", sa.String(16), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),  # Scanning, Scan Finished, Migrating, ...
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("files_scanned", sa.BigInteger, default=0),
    sa.Column("bytes_scanned", sa.BigInteger, default=0),
    sa.Column("files_to_copy", sa.BigInteger),
    sa.Column("bytes_to_copy", sa.BigInteger),
    sa.Column("subtasks", sa.Integer),
    sa.Column("window_start_ns", sa.BigInteger),
    sa.Column("window_end_ns", sa.BigInteger),
    sa.Column("report_url", sa.Text),
    sa.Column("message", sa.Text),
    sa.Column("run_number", sa.Integer),
    sa.Column("retry_of", sa.String(250)),
    sa.Column("spec", sa.Text),  # the job's settings as JSON (no secrets: addresses are ids)
    # What the report is built from (scan summary, verify counts; JSON), kept before its
    # upload so that ``sharelift report`` can store a refused report again.
    sa.Column("report_input", sa.Text),
)

outcomes = sa.Table(
    "sharelift_file_outcomes",
    metadata,
    sa.Column("job", sa.String(63), primary_key=True),
    sa.Column("run_id", sa.String(250), primary_key=True),
    # ``path``: relative to the source root, and the object's key under the destination's
    # root as well. ``object_key``: the object's full name in the bucket (prefix included,
    # ``Destination.object_name``), as the completed and error lists show it.
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("object_key", sa.Text, nullable=False),
    sa.Column("subtask", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # copied, skipped, failed
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger),
    sa.Column("crc64", sa.String(20)),
    sa.Column("reason", sa.Text),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("verified", sa.Boolean, default=False),
    # The destination's tag of the object this run stored: verify compares it with a
    # listing and heads only the objects whose tag or size differ.
    sa.Column("etag", sa.String(80)),
    # Why verify could not check a copied object (it stays copied; the report lists it).
    sa.Column("unverified", sa.Text),
)
sa.Index("ix_outcomes_status", outcomes.c.job, outcomes.c.run_id, outcomes.c.status)

# The run's plan, where every worker reads it (engine/manifest.py): the scan's rows, and
# the subtasks partition cut them into. A manifest's rows are keyed by a small number, not
# by the (job, run id) pair: ten million rows would repeat it ten million times.
manifests = sa.Table(
    "sharelift_manifests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(63), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("rows", sa.BigInteger),  # NULL while the scan writes; the count once it closed
    sa.UniqueConstraint("job", "run_id", name="uq_sharelift_manifests_run"),
)

manifest_rows = sa.Table(
    "sharelift_manifest_rows",
    metadata,
    sa.Column("manifest", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("row_no", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("mode", sa.Integer),
    sa.Column("action", sa.String(8), nullable=False),  # copy, skip, error
    sa.Column("reason", sa.Text),
)

subtasks = sa.Table(
    "sharelift_subtasks",
    metadata,
    sa.Column("manifest", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("subtask", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("start_row", sa.BigInteger, nullable=False),
    sa.Column("stop_row", sa.BigInteger, nullable=False),
    sa.Column("files", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("done_at", sa.Float),  # set when every row of it has a recorded outcome
)

# Flow control's (engine/flow_control.py): a job's limit, and a lease per running subtask.
flow_settings = sa.Table(
    "sharelift_flow_control",
    metadata,
    sa.Column("job", sa.String(63), primary_key=True),
    sa.Column("rules", sa.Text, nullable=False),  # JSON: [{"start","end","mb_per_s"}]
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

flow_leases = sa.Table(
    "sharelift_flow_leases",
    metadata,
    sa.Column("holder", sa.String(64), primary_key=True),
    sa.Column("job", sa.String(63), nullable=False, index=True),
    sa.Column("run_id", sa.String(250)),
    sa.Column("subtask", sa.Integer),
    sa.Column("worker", sa.String(255)),  # host:pid, for `show`
    sa.Column("beat", sa.BigInteger, nullable=False),
    sa.Column("rate", sa.Float),  # bytes/s this subtask allows itself; NULL = unthrottled
    sa.Column("started_at", sa.Float),
    sa.Column("last_seen", sa.Float),  # wall clock: display and garbage collection only
)


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    path: str
    object_key: str
    subtask: int
    status: str
    size: int
    mtime_ns: int | None
    crc64: int | None
    reason: str
    started_at: float
    finished_at: float
    etag: str | None = None

    def as_dict(self, job: str, run_id: str) -> dict[str, Any]:
        return dict(zip(_OUTCOME_COLUMNS, self.as_tuple(job, run_id), strict=True))

    def as_tuple(self, job: str, run_id: str) -> tuple[Any, ...]:
        """The row's values in the order of ``_OUTCOME_COLUMNS``."""
        return (
            job,
            run_id,
            self.path,
            self.object_key,
            self.subtask,
            self.status,
            self.size,
            self.mtime_ns,
            None if self.crc64 is None else str(self.crc64),
            self.reason,
            self.started_at,
            self.finished_at,
            False,  # verified
            self.etag,
            None,  # unverified
        )


_OUTCOME_COLUMNS = (
    "job",
    "run_id",
    "path",
    "object_key",
    "subtask",
    "status",
    "size",
    "mtime_ns",
    "crc64",
    "reason",
    "started_at",
    "finished_at",
    "verified",
    "etag",
    "unverified",
)
# SQLite's INSERT OR REPLACE deletes the row of the same key before it inserts: what
# ``record`` does with a DELETE and an INSERT elsewhere.
_SQLITE_RECORD = (
    f"INSERT OR REPLACE INTO {outcomes.name} ({', '.join(_OUTCOME_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_OUTCOME_COLUMNS))})"
)


def _dicts(result: sa.CursorResult[Any]) -> list[dict[str, Any]]:
    """The rows as dicts: ``dict(row_mapping)`` builds a view of the keys for every row,
    which cost more than the query when verify and report read every outcome of a run."""
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


SQLITE_WAIT_SECONDS = 60


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_WAIT_SECONDS * 1000}")
    _wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _wal(cur: Any) -> None:
    """Switch a database to WAL, waiting for a writer that holds it (up to the busy timeout).

    Waiting by hand: while another connection writes to a database not yet in WAL mode
    (one made before WAL, being migrated by another copy task), SQLite answers the switch
    "database is locked" at once, without calling its busy handler (a connection that
    reads and wants to write could otherwise wait on a writer that waits on it).
    """
    import sqlite3

    deadline = time.monotonic() + SQLITE_WAIT_SECONDS
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class StateStore:
    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": SQLITE_WAIT_SECONDS}
            db_file = url.split(":///", 1)[1] if ":///" in url else ""
            if db_file and db_file != ":memory:":
                import os

                os.makedirs(os.path.dirname(os.path.abspath(db_file)), exist_ok=True)
        self.engine: Engine = sa.create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            upgrade_to_head(self.engine, metadata)
        except BaseException:
            self.engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"StateStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    # -- runs ----------------------------------------------------------------------

    def upsert_run(self, job: str, run_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            found = conn.execute(
                sa.select(runs.c.job).where(runs.c.job == job, runs.c.run_id == run_id)
            ).first()
            if found:
                if values:
                    conn.execute(
                        runs.update()
                        .where(runs.c.job == job, runs.c.run_id == run_id)
                        .values(**values)
                    )
            else:
                values.setdefault("migration_type", "full")
                values.setdefault("state", "Migrating")
                values.setdefault("started_at", time.time())
                conn.execute(runs.insert().values(job=job, run_id=run_id, **values))

    def record_scan(self, job: str, run_id: str, result: Any) -> None:
        """State "Scan Finished": the totals of a finished scan (a ``ScanResult``)."""
        self.upsert_run(
            job,
            run_id,
            state="Scan Finished",
            files_scanned=result.files_seen,
            bytes_scanned=result.bytes_seen,
            files_to_copy=result.files_to_copy,
            bytes_to_copy=result.bytes_to_copy,
        )

    def get_run(self, job: str, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(runs).where(runs.c.job == job, runs.c.run_id == run_id))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def run_by_number(
        self, job: str, run_number: int, exclude_retries: bool = True
    ) -> dict[str, Any] | None:
        """The earliest-started run of ``job`` with this run number (incremental chains)."""
        q = sa.select(runs).where(runs.c.job == job, runs.c.run_number == run_number)
        if exclude_retries:
            q = q.where(runs.c.retry_of.is_(None))
        with self.engine.connect() as conn:
            row = conn.execute(q.order_by(runs.c.started_at).limit(1)).mappings().first()
        return dict(row) if row else None

    def list_runs(self, job: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(runs).order_by(runs.c.started_at)
        if job:
            q = q.where(runs.c.job == job)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    # -- per-file outcomes --------------------------------------------------------

    def record(self, job: str, run_id: str, rows: Iterable[OutcomeRow]) -> None:
        """Insert or replace outcomes (a re-run subtask overwrites its own rows)."""
        if self.engine.dialect.name == "sqlite":
            values = [r.as_tuple(job, run_id) for r in rows]
            if values:
                # The driver's own executemany, one statement: SQLAlchemy's per-row parameter
                # handling and the DELETE's expanding IN cost more than the writes (the
                # copy's largest Python cost per small file after the file itself).
                with self.engine.begin() as conn:
                    conn.exec_driver_sql(_SQLITE_RECORD, values)
            return
        batch = [r.as_dict(job, run_id) for r in rows]
        if not batch:
            return
        with self.engine.begin() as conn:
            paths = [b["path"] for b in batch]
            for i in range(0, len(paths), 500):
                conn.execute(
                    outcomes.delete().where(
                        outcomes.c.job == job,
                        outcomes.c.run_id == run_id,
                        outcomes.c.path.in_(paths[i : i + 500]),
                    )
                )
            conn.execute(outcomes.insert(), batch)

    def done_paths(self, job: str, run_id: str, subtask: int) -> dict[str, dict[str, Any]]:
        """Outcomes already recorded for a subtask that need no new attempt (copied or skipped)."""
        q = sa.select(outcomes).where(
            outcomes.c.job == job,
            outcomes.c.run_id == run_id,
            outcomes.c.subtask == subtask,
            outcomes.c.status.in_(["copied", "skipped"]),
        )
        with self.engine.connect() as conn:
            return {r["path"]: r for r in _dicts(conn.execute(q))}

    def iter_outcomes(
        self, job: str, run_id: str, status: str | None = None, chunk: int = 10_000
    ) -> Iterator[dict[str, Any]]:
        """Outcomes in path order, fetched in pages (bounded memory for millions of rows)."""
        last = ""
        while True:
            q = (
                sa.select(outcomes)
                .where(outcomes.c.job == job, outcomes.c.run_id == run_id, outcomes.c.path > last)
                .order_by(outcomes.c.path)
                .limit(chunk)
            )
            if status:
                q = q.where(outcomes.c.status == status)
            with self.engine.connect() as conn:
                page = _dicts(conn.execute(q))
            if not page:
                return
            yield from page
            last = page[-1]["path"]

    def missing(self, job: str, run_id: str, paths: list[str]) -> list[str]:
        """Those of ``paths`` that have no recorded outcome yet."""
        have: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(paths), 500):
                chunk = paths[i : i + 500]
                q = sa.select(outcomes.c.path).where(
                    outcomes.c.job == job, outcomes.c.run_id == run_id, outcomes.c.path.in_(chunk)
                )
                have.update(r[0] for r in conn.execute(q))
        return [p for p in paths if p not in have]

    def mark(self, job: str, run_id: str, updates: list[dict[str, Any]]) -> None:
        """Set status/reason/verified for some paths (verification results)."""
        if not updates:
            return
        # One executemany per shape of update: a statement per row cost ~0.8 s per 10k rows.
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for u in updates:
            shapes.setdefault(tuple(sorted(k for k in u if k != "path")), []).append(u)
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "sqlite":
                # The driver's own executemany, as in ``record``.
                for columns, rows in shapes.items():
                    sets = ", ".join(f"{outcomes.c[c].name} = ?" for c in columns)
                    conn.exec_driver_sql(
                        f"UPDATE {outcomes.name} SET {sets} WHERE job = ? AND run_id = ? "
                        "AND path = ?",
                        [(*(r[c] for c in columns), job, run_id, r["path"]) for r in rows],
                    )
                return
            for columns, rows in shapes.items():
                stmt = (
                    outcomes.update()
                    .where(
                        outcomes.c.job == job,
                        outcomes.c.run_id == run_id,
                        outcomes.c.path == sa.bindparam("b_path"),
                    )
                    .values({c: sa.bindparam(f"b_{c}") for c in columns})
                )
                conn.execute(stmt, [{f"b_{k}": v for k, v in r.items()} for r in rows])

    def counts(self, job: str, run_id: str) -> dict[str, tuple[int, int]]:
        """status -> (files, bytes)."""
        q = (
            sa.select(
                outcomes.c.status,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(outcomes.c.size), 0),
            )
            .where(outcomes.c.job == job, outcomes.c.run_id == run_id)
            .group_by(outcomes.c.status)
        )
        with self.engine.connect() as conn:
            return {s: (int(n), int(b)) for s, n, b in conn.execute(q)}

    def unverified(self, job: str, run_id: str) -> int:
        """Copied files whose objects verify could not check (``unverified`` says why)."""
        q = sa.select(sa.func.count()).where(
            outcomes.c.job == job,
            outcomes.c.run_id == run_id,
            outcomes.c.status == "copied",
            outcomes.c.unverified.is_not(None),
        )
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def skip_reasons(self, job: str, run_id: str) -> dict[str, int]:
        q = (
            sa.select(outcomes.c.reason, sa.func.count())
            .where(
                outcomes.c.job == job, outcomes.c.run_id == run_id, outcomes.c.status == "skipped"
            )
            .group_by(outcomes.c.reason)
        )
        with self.engine.connect() as conn:
            return {r or "": int(n) for r, n in conn.execute(q)}
