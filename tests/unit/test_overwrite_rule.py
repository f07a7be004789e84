"""The overwrite rule (docs/concepts.md): a same-named object is overwritten only by a newer source file."""

from __future__ import annotations

from sharelift.storage.base import Entry, EntryKind, ObjectInfo
from sharelift.transfer import skip_reason

FILE = Entry("a.txt", EntryKind.FILE, size=10, mtime_ns=2_000)


def test_a_missing_object_is_copied() -> None:
    assert skip_reason(FILE, None) is None


def test_an_older_object_is_overwritten() -> None:
    assert skip_reason(FILE, ObjectInfo("a.txt", 10, source_mtime_ns=1_000)) is None


def test_the_same_file_already_migrated_is_skipped_as_such() -> None:
    reason = skip_reason(FILE, ObjectInfo("a.txt", 10, source_mtime_ns=2_000))
    assert reason is not None and "already migrated" in reason


def test_a_newer_object_is_left_alone() -> None:
    reason = skip_reason(FILE, ObjectInfo("a.txt", 99, source_mtime_ns=3_000))
    assert reason == "destination object is not older than the source file"


def test_a_foreign_object_is_compared_by_its_own_modification_time() -> None:
    assert skip_reason(FILE, ObjectInfo("a.txt", 1, last_modified_ns=1_000)) is None
    assert skip_reason(FILE, ObjectInfo("a.txt", 1, last_modified_ns=5_000)) is not None
