"""Partition: cut the manifest into subtasks by file count and by size (docs/jobs.md), and
the subtasks into at most as many groups as the orchestrator will run as mapped tasks.

A subtask closes as soon as either limit is reached: 10,000 files at 500 per subtask give
20 subtasks. A file larger than the size limit gets a subtask of its own. Subtasks are row
ranges of the manifest, recorded with it in the state database.

Airflow maps at most ``[core] max_map_length`` task instances (1,024 by default), and a
10-million-file share at 1,000 files per subtask has 10,000 subtasks. So the copy tasks
take groups: consecutive subtasks, as evenly spread as the count allows, each copy task
working through its group in order. With no more subtasks than the limit, a group is one
subtask.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sharelift.engine.manifest import Manifest


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


@dataclass(frozen=True, slots=True)
class SubtaskGroup:
    """Subtasks ``first``..``stop`` (indices, ``stop`` excluded): one mapped copy task."""

    index: int
    first: int
    stop: int
    files: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubtaskGroup:
        return cls(**{k: int(data[k]) for k in cls.__dataclass_fields__})

    def label(self) -> str:
        """How the Airflow UI names the mapped instance."""
        if self.stop - self.first == 1:
            return f"{self.first} ({self.files} files)"
        return f"{self.first}-{self.stop - 1} ({self.files} files)"


def cut(sizes: Iterator[tuple[int, str]], max_files: int, max_bytes: int) -> Iterator[Subtask]:
    """The subtasks of a manifest given as (size, action) per row, in row order."""
    index = start = row = files = size = 0
    for s, action in sizes:
        row += 1
        if action != "copy":
            continue
        files += 1
        size += s
        if files >= max_files or size >= max_bytes:
            yield Subtask(index, start, row, files, size)
            index += 1
            start, files, size = row, 0, 0
    if row > start:
        # The tail: remaining files, or only skip/error rows (they still need recording).
        yield Subtask(index, start, row, files, size)


def partition(manifest: Manifest, max_files: int, max_bytes: int) -> list[Subtask]:
    """Cut ``manifest`` into subtasks and record them with it (replacing earlier ones)."""
    found = list(cut(manifest.sizes(), max_files, max_bytes))
    manifest.save_subtasks((s.index, s.start_row, s.stop_row, s.files, s.bytes) for s in found)
    return found


def group(subtasks: Sequence[Subtask], max_groups: int) -> list[SubtaskGroup]:
    """At most ``max_groups`` groups of consecutive subtasks, sizes differing by one at most."""
    if max_groups < 1:
        raise ValueError(f"max_groups must be at least 1 (got {max_groups})")
    n = len(subtasks)
    count = min(n, max_groups)
    groups: list[SubtaskGroup] = []
    for g in range(count):
        first, stop = g * n // count, (g + 1) * n // count
        members = subtasks[first:stop]
        groups.append(
            SubtaskGroup(
                g, first, stop, sum(s.files for s in members), sum(s.bytes for s in members)
            )
        )
    return groups
