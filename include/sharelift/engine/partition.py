"""Partition: cut the manifest into subtasks by file count and by size (docs/jobs.md).

A subtask closes as soon as either limit is reached: 10,000 files at 500 per subtask give
20 subtasks. A file larger than the size limit gets a subtask of its own. Subtasks are row
ranges of the manifest, so the descriptors passed through XCom stay tiny.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sharelift.engine.manifest import iter_columns


@dataclass(frozen=True, slots=True)
class Subtask:
    index: int
    start_row: int
    stop_row: int
    files: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Subtask:
        return cls(**{k: int(data[k]) for k in cls.__dataclass_fields__})


def partition(manifest_path: str, max_files: int, max_bytes: int) -> list[Subtask]:
    subtasks: list[Subtask] = []
    start = row = files = size = 0
    for batch in iter_columns(manifest_path, ["size", "action"]):
        sizes = batch.column(0).to_pylist()
        actions = batch.column(1).to_pylist()
        for s, action in zip(sizes, actions, strict=True):
            row += 1
            if action != "copy":
                continue
            files += 1
            size += s
            if files >= max_files or size >= max_bytes:
                subtasks.append(Subtask(len(subtasks), start, row, files, size))
                start, files, size = row, 0, 0
    if row > start:
        # The tail: remaining files, or only skip/error rows (they still need recording).
        subtasks.append(Subtask(len(subtasks), start, row, files, size))
    return subtasks
