"""``check_relative_path``: its shortcut for paths already normal gives what the rule
itself gives, for every short path made of the characters that matter."""

from __future__ import annotations

import itertools

import pytest

from sharelift.errors import ConfigError
from sharelift.storage.base import check_relative_path


def by_the_rule(path: str) -> str | None:
    """Names split on '/', empty names and '.' dropped; ``None`` for a path with '..'."""
    names = [n for n in path.split("/") if n not in ("", ".")]
    return None if ".." in names else "/".join(names)


def checked(path: str) -> str | None:
    try:
        return check_relative_path(path)
    except ConfigError:
        return None


def test_every_short_path_is_normalised_or_refused_as_the_rule_says() -> None:
    for length in range(7):
        for chars in itertools.product(["a", ".", "/", "b.", "\\"], repeat=length):
            path = "".join(chars)
            assert checked(path) == by_the_rule(path), path


@pytest.mark.parametrize("path", ["a/b.txt", ".hidden/x", "a/./b", "a//b", "/a/", "a/.."])
def test_examples(path: str) -> None:
    assert checked(path) == by_the_rule(path)
