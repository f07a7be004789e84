"""The scan's output: one Parquet file of every entry considered, written in batches.

Millions of rows never pass through XCom or memory at once: the scan appends row groups
of ``BATCH`` entries, partition reads back only the columns it needs, and a copy subtask
reads its row range. Parquet (pyarrow) keeps it compact and typed; every worker reads it
from the shared work folder.

``action`` says what the run does with the entry: ``copy``, or ``skip`` / ``error`` with
``reason`` (symlinks, special files, folders the server would not list, ...). Every
``path`` is valid UTF-8 (Parquet strings must be): the scan records a name that is not
under its escaped spelling (``sharelift.engine.names``), and error rows keep the size and
mtime the listing gave.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

BATCH = 50_000

SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("mode", pa.int32()),
        ("action", pa.string()),
        ("reason", pa.string()),
    ]
)


@dataclass(frozen=True, slots=True)
class ManifestRow:
    path: str
    size: int
    mtime_ns: int
    mode: int | None
    action: str
    reason: str = ""


class ManifestWriter:
    """Append rows; each ``BATCH`` becomes a row group. Written to a temp name, then renamed."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._tmp = f"{path}.partial"
        self._writer = pq.ParquetWriter(self._tmp, SCHEMA, compression="zstd")
        self._cols: dict[str, list[object]] = {name: [] for name in SCHEMA.names}
        self.rows = 0

    def add(self, row: ManifestRow) -> None:
        c = self._cols
        c["path"].append(row.path)
        c["size"].append(row.size)
        c["mtime_ns"].append(row.mtime_ns)
        c["mode"].append(row.mode)
        c["action"].append(row.action)
        c["reason"].append(row.reason)
        self.rows += 1
        if len(c["path"]) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._cols["path"]:
            return
        self._writer.write_table(pa.table(self._cols, schema=SCHEMA))
        self._cols = {name: [] for name in SCHEMA.names}

    def close(self) -> None:
        self._flush()
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


def iter_rows(
    path: str, start: int = 0, stop: int | None = None, batch: int = BATCH
) -> Iterator[ManifestRow]:
    """Rows ``start``..``stop`` (row numbers over the whole file), reading only row groups needed."""
    f = pq.ParquetFile(path)
    offset = 0
    for rg in range(f.num_row_groups):
        n = f.metadata.row_group(rg).num_rows
        if stop is not None and offset >= stop:
            break
        if offset + n <= start:
            offset += n
            continue
        table = f.read_row_group(rg)
        lo = max(0, start - offset)
        hi = n if stop is None else min(n, stop - offset)
        cols = {name: table.column(name).to_pylist()[lo:hi] for name in SCHEMA.names}
        for i in range(hi - lo):
            yield ManifestRow(
                cols["path"][i],
                cols["size"][i],
                cols["mtime_ns"][i],
                cols["mode"][i],
                cols["action"][i],
                cols["reason"][i] or "",
            )
        offset += n


def iter_columns(path: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH, columns=columns)
