"""Flow-control settings (docs/flow-control.md): parsing, validation, and which limit applies when."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sharelift.engine.flow_control import FlowControl, FlowRule
from sharelift.errors import ConfigError


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2024, 6, 3, hh, mm, ss, tzinfo=UTC)


def test_parses_entries_and_prints_them_back() -> None:
    fc = FlowControl.parse("08:00-18:00=10, 18:00-08:00=50")
    assert fc.rules == (FlowRule(480, 1080, 10.0), FlowRule(1080, 480, 50.0))
    assert fc.text == "08:00-18:00=10,18:00-08:00=50"
    assert fc.timezone == "UTC"
    assert FlowControl.parse("8:30-9:00=0.5").text == "08:30-09:00=0.5"
    assert FlowControl.parse("18:00-24:00=5").rules[0].end == 24 * 60


def test_which_entry_applies_and_unthrottled_outside_every_range() -> None:
    fc = FlowControl.parse("08:00-12:00=10,13:00-18:00=20")
    assert fc.limit_at(at(7, 59, 59)) is None
    assert fc.limit_at(at(8, 0)) == 10
    assert fc.limit_at(at(11, 59, 59)) == 10
    assert fc.limit_at(at(12, 0)) is None  # ranges are half-open
    assert fc.limit_at(at(12, 30)) is None
    assert fc.limit_at(at(13, 0)) == 20
    assert fc.limit_at(at(18, 0)) is None


def test_a_range_may_cross_midnight() -> None:
    fc = FlowControl.parse("22:00-06:00=50,09:00-17:00=5")
    assert fc.rules[0].crosses_midnight
    assert fc.limit_at(at(23, 30)) == 50
    assert fc.limit_at(at(0, 0)) == 50
    assert fc.limit_at(at(5, 59)) == 50
    assert fc.limit_at(at(6, 0)) is None
    assert fc.limit_at(at(21, 59)) is None
    assert fc.limit_at(at(12, 0)) == 5


def test_whole_day() -> None:
    fc = FlowControl.parse("00:00-24:00=3")
    assert all(fc.limit_at(at(h, 17)) == 3 for h in range(24))


def test_times_are_read_in_the_stored_time_zone() -> None:
    fc = FlowControl.parse("08:00-18:00=10", timezone="Asia/Shanghai")  # UTC+8
    assert fc.timezone == "Asia/Shanghai"
    assert fc.limit_at(at(0, 0)) == 10  # 08:00 in Shanghai
    assert fc.limit_at(at(9, 59)) == 10  # 17:59 in Shanghai
    assert fc.limit_at(at(10, 0)) is None  # 18:00 in Shanghai
    assert fc.limit_at(at(23, 59)) is None  # 07:59 in Shanghai


def test_round_trip_through_the_stored_row() -> None:
    fc = FlowControl.parse("22:00-06:00=50,09:00-17:00=5.5", timezone="Europe/Berlin")
    assert FlowControl.from_row(fc.to_row()) == fc


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("08:00-18:00=10,17:00-19:00=5", "must not overlap"),
        ("22:00-06:00=10,05:00-07:00=5", "must not overlap"),
        ("22:00-06:00=10,23:00-01:00=5", "must not overlap"),
        ("00:00-24:00=10,12:00-13:00=5", "must not overlap"),
        ("08:00-18:00=0", "greater than 0"),
        ("08:00-18:00=-5", "greater than 0"),
        ("08:00-18:00=nan", "greater than 0"),
        ("08:00-18:00=inf", "greater than 0"),
        ("08:00-18:00=fast", "number of MB/s"),
        ("25:00-26:00=5", "HH:MM"),
        ("08:00-25:00=5", "HH:MM"),
        ("08:60-09:00=5", "HH:MM"),
        ("24:00-06:00=5", "HH:MM"),
        ("8-9=5", "HH:MM"),
        ("08:00-18:00", "HH:MM-HH:MM=MB/s"),
        ("08:00=10", "HH:MM-HH:MM=MB/s"),
        ("08:00-08:00=10", "must not be empty"),
        ("00:00-00:00=10", "must not be empty"),
        ("", "at least one entry"),
        (" , ", "HH:MM-HH:MM=MB/s"),
    ],
)
def test_bad_settings_name_the_field_and_the_rule(text: str, rule: str) -> None:
    with pytest.raises(ConfigError) as err:
        FlowControl.parse(text)
    assert err.value.field == "flow_control"
    assert rule in err.value.rule
    assert str(err.value).startswith("flow_control: ")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "+08:00", "../etc/passwd"])
def test_bad_time_zone(zone: str) -> None:
    with pytest.raises(ConfigError) as err:
        FlowControl.parse("08:00-18:00=10", timezone=zone or " ")
    assert err.value.field == "timezone"
    assert "IANA" in err.value.rule
