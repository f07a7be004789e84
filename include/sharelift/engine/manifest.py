"""The scan's output, in the state database: one numbered row per entry considered.

Workers share no folder, so the manifest lives where every task of the run reaches it:
the state database (``sharelift_manifests`` names it, ``sharelift_manifest_rows`` holds
its rows, numbered from 0 in scan order). The scan appends rows in batches of ``BATCH``;
partition reads back only the columns it needs, page by page; a copy subtask reads its
row range. Millions of rows never pass through XCom or memory at once.

``action`` says what the run does with the entry: ``copy``, or ``skip`` / ``error`` with
``reason`` (symlinks, special files, folders the server would not list, ...). Every
``path`` is valid UTF-8: the scan records a name that is not under its escaped spelling
(``sharelift.engine.names``), and error rows keep the size and mtime the listing gave.

The subtasks partition cuts the manifest into are stored beside it
(``sharelift_subtasks``), with the time each finished: a copy task, on whatever worker,
reads the row ranges of its subtasks and skips those already done.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from sharelift.engine.state import StateStore, manifest_rows, manifests, subtasks
from sharelift.errors import ShareliftError

BATCH = 20_000  # rows per insert while scanning
PAGE = 20_000  # rows per query while reading


class ManifestMissing(ShareliftError):
    """A step needs a manifest the scan has not (or not completely) written."""


@dataclass(frozen=True, slots=True)
class ManifestRow:
    path: str
    size: int
    mtime_ns: int
    mode: int | None
    action: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StoredSubtask:
    """A subtask as partition recorded it: its row range and whether it finished."""

    index: int
    start_row: int
    stop_row: int
    files: int
    bytes: int
    done: bool


class Manifest:
    """The manifest of one run (``job``, ``run_id``) in the state database ``state``."""

    def __init__(self, state: StateStore, job: str, run_id: str) -> None:
        self.state = state
        self.job = job
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"Manifest({self.job!r}, {self.run_id!r})"

    def describe(self) -> str:
        """Where the rows are, for the scan's summary."""
        return f"state database, {manifests.name} job={self.job} run={self.run_id}"

    # -- writing (the scan) ------------------------------------------------------------

    def writer(self) -> ManifestWriter:
        """A writer that starts the manifest afresh (a scan run again replaces its rows)."""
        return ManifestWriter(self.state, self._start())

    def _start(self) -> int:
        key = (manifests.c.job == self.job, manifests.c.run_id == self.run_id)
        with self.state.engine.begin() as conn:
            found = conn.execute(sa.select(manifests.c.id).where(*key)).scalar()
            if found is None:
                inserted = conn.execute(
                    manifests.insert().values(job=self.job, run_id=self.run_id, rows=None)
                )
                new = inserted.inserted_primary_key
                assert new is not None  # an insert of one row has one
                return int(new[0])
            conn.execute(manifests.update().where(manifests.c.id == found).values(rows=None))
            conn.execute(subtasks.delete().where(subtasks.c.manifest == found))
            conn.execute(manifest_rows.delete().where(manifest_rows.c.manifest == found))
            return int(found)

    # -- reading (partition, copy, report) ---------------------------------------------

    def _closed(self) -> tuple[int, int]:
        """(id, number of rows) of the finished manifest, or ``ManifestMissing``."""
        q = sa.select(manifests.c.id, manifests.c.rows).where(
            manifests.c.job == self.job, manifests.c.run_id == self.run_id
        )
        with self.state.engine.connect() as conn:
            found = conn.execute(q).first()
        if found is None or found[1] is None:
            raise ManifestMissing(
                f"run {self.run_id} of job {self.job} has no finished scan in the state "
                f"database {self.state.engine.url.render_as_string(hide_password=True)}: "
                "run its scan first"
            )
        return int(found[0]), int(found[1])

    @property
    def rows_count(self) -> int:
        return self._closed()[1]

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[ManifestRow]:
        """Rows ``start``..``stop`` in order, fetched a page at a time."""
        ident, count = self._closed()
        stop = count if stop is None else min(stop, count)
        c = manifest_rows.c
        columns = (c.path, c.size, c.mtime_ns, c.mode, c.action, c.reason)
        for lo in range(start, stop, PAGE):
            q = (
                sa.select(*columns)
                .where(c.manifest == ident, c.row_no >= lo, c.row_no < min(lo + PAGE, stop))
                .order_by(c.row_no)
            )
            with self.state.engine.connect() as conn:
                page = conn.execute(q).all()
            for path, size, mtime_ns, mode, action, reason in page:
                yield ManifestRow(path, size, mtime_ns, mode, action, reason or "")

    def sizes(self) -> Iterator[tuple[int, str]]:
        """(size, action) of every row in order: what partition needs, and only that."""
        ident, count = self._closed()
        c = manifest_rows.c
        for lo in range(0, count, PAGE):
            q = (
                sa.select(c.size, c.action)
                .where(c.manifest == ident, c.row_no >= lo, c.row_no < lo + PAGE)
                .order_by(c.row_no)
            )
            with self.state.engine.connect() as conn:
                page = conn.execute(q).all()
            yield from ((int(size), action) for size, action in page)

    # -- subtasks (partition writes them, copy works through them) ---------------------

    def save_subtasks(self, planned: Iterable[tuple[int, int, int, int, int]]) -> int:
        """Replace the run's subtasks with ``planned`` (index, start, stop, files, bytes)."""
        ident, _ = self._closed()
        count = 0
        with self.state.engine.begin() as conn:
            conn.execute(subtasks.delete().where(subtasks.c.manifest == ident))
            batch: list[dict[str, object]] = []
            for index, start, stop, files, size in planned:
                batch.append(
                    {
                        "manifest": ident,
                        "subtask": index,
                        "start_row": start,
                        "stop_row": stop,
                        "files": files,
                        "bytes": size,
                        "done_at": None,
                    }
                )
                if len(batch) >= BATCH:
                    conn.execute(subtasks.insert(), batch)
                    count += len(batch)
                    batch = []
            if batch:
                conn.execute(subtasks.insert(), batch)
                count += len(batch)
        return count

    def subtasks(self, first: int = 0, stop: int | None = None) -> list[StoredSubtask]:
        """The recorded subtasks ``first``..``stop`` (indices), in order."""
        ident, _ = self._closed()
        c = subtasks.c
        q = sa.select(c.subtask, c.start_row, c.stop_row, c.files, c.bytes, c.done_at).where(
            c.manifest == ident, c.subtask >= first
        )
        if stop is not None:
            q = q.where(c.subtask < stop)
        with self.state.engine.connect() as conn:
            found = conn.execute(q.order_by(c.subtask)).all()
        return [
            StoredSubtask(int(i), int(a), int(b), int(f), int(n), done is not None)
            for i, a, b, f, n, done in found
        ]

    def mark_done(self, index: int) -> None:
        """Subtask ``index`` has an outcome for each of its rows: a retry skips it."""
        ident, _ = self._closed()
        with self.state.engine.begin() as conn:
            conn.execute(
                subtasks.update()
                .where(subtasks.c.manifest == ident, subtasks.c.subtask == index)
                .values(done_at=time.time())
            )

    def is_done(self, index: int) -> bool:
        found = self.subtasks(index, index + 1)
        return bool(found) and found[0].done


_COLUMNS = ("manifest", "row_no", "path", "size", "mtime_ns", "mode", "action", "reason")


class ManifestWriter:
    """Append rows; every ``BATCH`` rows are one insert. ``close`` marks the manifest
    finished (its row count set): until then no other step reads it."""

    def __init__(self, state: StateStore, ident: int) -> None:
        self._state = state
        self._id = ident
        self._batch: list[tuple[object, ...]] = []
        self._sqlite = state.engine.dialect.name == "sqlite"
        self.rows = 0

    def add(self, row: ManifestRow) -> None:
        self._batch.append(
            (
                self._id,
                self.rows,
                row.path,
                row.size,
                row.mtime_ns,
                row.mode,
                row.action,
                row.reason or None,
            )
        )
        self.rows += 1
        if len(self._batch) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._batch:
            return
        with self._state.engine.begin() as conn:
            if self._sqlite:
                # The driver's own executemany: SQLAlchemy's per-row parameter handling
                # cost twice the insert itself, and SQLite needs no batching of VALUES.
                marks = ", ".join("?" * len(_COLUMNS))
                conn.exec_driver_sql(
                    f"INSERT INTO {manifest_rows.name} ({', '.join(_COLUMNS)}) VALUES ({marks})",
                    self._batch,
                )
            else:
                # SQLAlchemy batches the rows into multi-row VALUES (psycopg2's executemany
                # would send one statement per row).
                conn.execute(
                    manifest_rows.insert(),
                    [dict(zip(_COLUMNS, r, strict=True)) for r in self._batch],
                )
        self._batch = []

    def close(self) -> None:
        self._flush()
        with self._state.engine.begin() as conn:
            conn.execute(
                manifests.update().where(manifests.c.id == self._id).values(rows=self.rows)
            )

    def abort(self) -> None:
        """Leave the manifest unfinished: the rows written stay until the scan runs again."""
        self._batch = []
