"""``sharelift airflow-setup``: the copy pool is sized to the machine, at most 20."""

from __future__ import annotations

import argparse

import pytest

from sharelift.airflow import setup_cli


@pytest.mark.parametrize(("cpus", "slots"), [(1, 4), (2, 4), (3, 6), (8, 16), (64, 20), (None, 4)])
def test_the_default_pool_has_two_slots_per_cpu_within_4_and_20(
    monkeypatch: pytest.MonkeyPatch, cpus: int | None, slots: int
) -> None:
    monkeypatch.setattr(setup_cli.os, "cpu_count", lambda: cpus)
    assert setup_cli.default_pool_slots() == slots


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    setup_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_pool_slots_can_be_set_up_to_the_spec_limit() -> None:
    assert parse("--pool-slots", "20").pool_slots == 20
    assert parse().pool_slots is None


@pytest.mark.parametrize("value", ["0", "21", "many"])
def test_pool_slots_outside_1_to_20_are_refused_naming_the_rule(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse("--pool-slots", value)
    err = capsys.readouterr().err
    assert "--pool-slots" in err
    assert "between 1 and 20" in err or "whole number" in err
