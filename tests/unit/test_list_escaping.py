"""The report lists' one escaping rule for names, and the summary's accounting check."""

from __future__ import annotations

import os

import pytest

from sharelift.engine.names import (
    NOT_UTF8_REASON,
    escape_field,
    is_storable,
    stored_path,
    unescape_bytes,
    unescape_field,
)
from sharelift.engine.report import accounting, iso_ns, object_list_name

AWKWARD = [
    "plain.txt",
    "with space.txt",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "back\\slash",
    "100%",
    "%41 looks escaped",
    "hash#;plus+",
    "unicode êé 世界 \U0001f600",
    "line\u2028separator\u2029",
    "nel\x85c1",
    "del\x7f",
    "\x01\x1f",
]


@pytest.mark.parametrize("name", AWKWARD)
def test_an_escaped_name_has_no_tab_or_line_break_and_comes_back_exactly(name: str) -> None:
    escaped = escape_field(name)
    assert len(escaped.splitlines()) == 1
    assert "\t" not in escaped
    assert unescape_field(escaped) == name
    assert unescape_bytes(escaped) == name.encode()


def test_every_byte_string_round_trips_through_the_rule() -> None:
    for raw in [bytes([b]) + b"x" for b in range(1, 256)] + [os.urandom(64) for _ in range(200)]:
        name = raw.replace(b"/", b"_").decode("utf-8", "surrogateescape")
        escaped = escape_field(name)
        assert is_storable(escaped)
        escaped.encode("utf-8")  # what the list file and the state database need
        assert len(escaped.splitlines()) == 1 and "\t" not in escaped
        assert unescape_bytes(escaped) == raw.replace(b"/", b"_")
        assert unescape_field(escaped) == name


def test_a_name_that_is_not_utf8_shows_its_bytes_as_percent_hex() -> None:
    name = b"caf\xe9 %.txt".decode("utf-8", "surrogateescape")
    assert escape_field(name) == "caf%E9 %25.txt"
    assert stored_path(f"dir/{name}") == "dir/caf%E9 %25.txt"


def test_an_unpaired_utf16_surrogate_from_smb_is_written_as_its_wtf8_bytes() -> None:
    assert escape_field("a\ud800b") == "a%ED%A0%80b"


def test_names_that_need_nothing_are_left_alone() -> None:
    assert escape_field("a/b c.txt") == "a/b c.txt"
    assert stored_path("a/b c%.txt") == "a/b c%.txt"  # storable: recorded as it is


def test_an_object_recorded_under_its_escaped_name_is_escaped_once_in_the_error_list() -> None:
    stored = stored_path(b"d/x\xff".decode("utf-8", "surrogateescape"))
    assert object_list_name("pre%fix/" + stored, stored, NOT_UTF8_REASON) == "pre%25fix/d/x%FF"
    assert object_list_name("pre/d/100%", "d/100%", "permission denied") == "pre/d/100%25"


def test_times_before_1970_and_after_9999_keep_the_report_alive() -> None:
    assert iso_ns(-31_536_000_000_000_000) == "1969-01-01T00:00:00.000000000Z"
    assert iso_ns(4_102_444_805_000_000_000) == "2100-01-01T00:00:05.000000000Z"
    assert iso_ns(10**30).startswith("@")


def _summary(copied: int, skipped: int, failed: int) -> dict[str, int]:
    return {
        "files_copied": copied,
        "files_skipped": skipped,
        "files_failed": failed,
        "files_total": copied + skipped + failed,
    }


def test_the_accounting_adds_up_when_every_entry_seen_is_counted_once() -> None:
    scan = {"files_seen": 12, "left_out": {"excluded by include/exclude filters": 2}}
    check = accounting(_summary(6, 3, 1), scan)
    assert check["adds_up"] is True
    assert check["files_left_out"] == 2


def test_the_accounting_says_so_when_an_entry_is_missing() -> None:
    scan = {"files_seen": 12, "left_out": {}}
    assert accounting(_summary(6, 3, 1), scan)["adds_up"] is False
