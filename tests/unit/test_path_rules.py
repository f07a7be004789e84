"""The one path rule: prefixes, source sub-folders and connection folders never name '..',
'.', an empty folder, '\\' or NUL; the trigger form's pattern says exactly what the check says."""

from __future__ import annotations

import jsonschema
import pytest

from sharelift.errors import ConfigError
from sharelift.path_rules import PATTERNS, PathForm, check_folder_name, check_path

GOOD: dict[PathForm, list[str]] = {
    "prefix": ["", "data/", "a/b/", "..a/", "a../", ".hidden/", "a b/ü/"],
    "relative": ["", "/", "reports", "/reports/", "a/b", "...", "a/.b", "a b/ü"],
    "absolute": ["/", "/srv", "/srv/", "/srv/data", "/a b/.x"],
}
BAD: dict[PathForm, list[tuple[str, str]]] = {
    "prefix": [
        ("../", "'..' as a folder name"),
        ("./", "'.' as a folder name"),
        ("a/../", "'..' as a folder name"),
        ("a/./b/", "'.' as a folder name"),
        ("a//", "empty folder name"),
        ("/a/", "must not start with '/'"),
        ("a", "must end with '/'"),
        ("a\\b/", "must not contain '\\'"),
        ("..\\x/", "must not contain '\\'"),
        ("a\x00/", "NUL"),
    ],
    "relative": [
        ("..", "'..' as a folder name"),
        ("../outside", "'..' as a folder name"),
        ("a/..", "'..' as a folder name"),
        ("a/../..", "'..' as a folder name"),
        (".", "'.' as a folder name"),
        ("a//b", "empty folder name"),
        ("//a", "empty folder name"),
        ("..\\outside", "must not contain '\\'"),
        ("a\x00", "NUL"),
    ],
    "absolute": [
        ("/srv/../etc", "'..' as a folder name"),
        ("/srv/./x", "'.' as a folder name"),
        ("//srv", "empty folder name"),
        ("srv", "must be an absolute path"),
        ("", "must be an absolute path"),
        ("/srv\\x", "must not contain '\\'"),
    ],
}


@pytest.mark.parametrize(
    ("form", "value"), [(f, v) for f, values in GOOD.items() for v in values], ids=repr
)
def test_paths_of_real_folder_names_are_accepted(form: PathForm, value: str) -> None:
    check_path(value, "field", form)


@pytest.mark.parametrize(
    ("form", "value", "rule"),
    [(f, v, r) for f, cases in BAD.items() for v, r in cases],
    ids=repr,
)
def test_paths_that_could_leave_their_folder_are_refused_naming_field_and_rule(
    form: PathForm, value: str, rule: str
) -> None:
    with pytest.raises(ConfigError) as info:
        check_path(value, "destination_prefix", form)
    assert info.value.field == "destination_prefix"
    assert rule in info.value.rule


@pytest.mark.parametrize("form", list(PATTERNS))
def test_the_form_pattern_accepts_and_refuses_what_the_check_does(form: PathForm) -> None:
    """The trigger form validates with jsonschema and ``PATTERNS``; it must agree."""
    schema = {"type": "string", "pattern": PATTERNS[form]}
    for value in GOOD[form]:
        jsonschema.validate(value, schema)
    for value, _ in BAD[form]:
        if form == "absolute" and value == "":
            continue  # the form has no absolute paths; an empty one is "not given" there
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema)


def test_normalised_forms_drop_only_the_slashes_at_the_ends() -> None:
    assert check_path("/srv/data/", "f", "absolute") == "/srv/data"
    assert check_path("/", "f", "absolute") == "/"
    assert check_path("/reports/2024/", "f", "relative") == "reports/2024"
    assert check_path("data/", "f", "prefix") == "data/"


def test_a_prefix_longer_than_an_oss_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="1024 bytes"):
        check_path("é/" * 400, "prefix", "prefix")


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "a\\b", "a\x00"])
def test_a_share_name_is_one_real_folder_name(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_folder_name(name, "share")
    assert info.value.field == "share"
    assert check_folder_name("data", "share") == "data"
