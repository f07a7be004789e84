"""The one rule for every path someone types: a prefix, a source sub-folder, a connection's folder.

The trigger form, job files and connections all end up naming folders; if one of them let
``..`` through, ``destination_prefix: ../`` or ``source_path: ../outside`` would leave the
folder the address stands for. So each of them checks with ``check_path`` here, and the
trigger form's JSON schema uses ``PATTERNS``, the same grammar as a regular expression
(``check_path`` matches with it too, so the two cannot drift apart; jsonschema's ``$``
also matches before a final newline, so ``check_path``, which runs again when a run
starts, is the authority).

A path is folder names separated by single ``/``. A name is never:

* empty (``a//b``): object stores keep ``a//b`` and ``a/b`` apart, file systems do not;
* ``.`` or ``..``: they name the folder itself or its parent, not a folder inside;
* holding ``\\``: a separator for SMB servers and Windows, where ``..\\x`` is ``..``;
* holding NUL: C ends a name there, so what the kernel sees is not what was checked.

Forms: ``absolute`` (a folder on a machine: ``/srv/data``, a trailing ``/`` allowed),
``relative`` (inside a share: ``reports/2024``; a leading or trailing ``/`` allowed, and
ignored), ``prefix`` (an object-key prefix: empty, or names each ending with ``/``).
"""

from __future__ import annotations

import re
from typing import Literal

from sharelift.errors import ConfigError

PathForm = Literal["absolute", "relative", "prefix"]

# One folder name: not empty, not '.' or '..', no '/', '\' or NUL.
_NAME = r"(?!\.\.?(?:/|$))[^/\\\x00]+"
PATTERNS: dict[PathForm, str] = {
    "absolute": rf"^/(?:{_NAME}(?:/{_NAME})*/?)?$",
    "relative": rf"^/?(?:{_NAME}(?:/{_NAME})*/?)?$",
    "prefix": rf"^(?:{_NAME}/)*$",
}
_COMPILED = {form: re.compile(p) for form, p in PATTERNS.items()}
MAX_PREFIX_BYTES = 1023  # OSS: a key is at most 1,023 bytes

RULES: dict[PathForm, str] = {
    "absolute": "an absolute folder path like /srv/data: folder names separated by '/', "
    "none of them empty, '.' or '..', without '\\' or NUL",
    "relative": "a folder path inside the share like reports/2024: folder names separated "
    "by '/', none of them empty, '.' or '..', without '\\' or NUL",
    "prefix": "empty, or folder names each ending with '/' like data/2024/: not starting "
    "with '/', none of them empty, '.' or '..', without '\\' or NUL",
}


def check_path(value: object, field: str, form: PathForm) -> str:
    """``value`` if it follows the rule of ``form``, normalised; else ``ConfigError`` naming
    ``field`` and the rule broken. Normalised: an absolute path loses its trailing ``/``
    (``/`` stays), a relative one its leading and trailing ``/``; a prefix is unchanged."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ConfigError(field, f"must be a text path, {RULES[form]} (got {value!r})")
    if form == "prefix" and len(value.encode("utf-8", "surrogatepass")) > MAX_PREFIX_BYTES:
        raise ConfigError(field, "must be shorter than 1024 bytes (OSS key limit)")
    if not _COMPILED[form].fullmatch(value):
        raise ConfigError(field, f"{_broken_rule(value, form)} (got {value!r})")
    if form == "absolute":
        return value.rstrip("/") or "/"
    if form == "relative":
        return value.strip("/")
    return value


def check_folder_name(value: object, field: str) -> str:
    """One folder name (an SMB share): the name rule alone, no '/' at all."""
    if (
        not isinstance(value, str)
        or not value
        or "/" in value
        or not _COMPILED["relative"].fullmatch(value)
    ):
        raise ConfigError(
            field,
            "must be one folder name: not empty, '.' or '..', without '/', '\\' or NUL "
            f"(got {value!r})",
        )
    return value


def _broken_rule(value: str, form: PathForm) -> str:
    """Which part of the rule ``value`` breaks, in the words an operator can act on."""
    if "\x00" in value:
        return "must not contain a NUL character"
    if "\\" in value:
        return "must not contain '\\': folders are separated by '/'"
    if form == "absolute" and not value.startswith("/"):
        return "must be an absolute path (start with '/')"
    if form == "prefix":
        if value.startswith("/"):
            return "must not start with '/'"
        if not value.endswith("/"):
            return "must end with '/'"
    names = value.split("/")
    if form in ("absolute", "relative") and value.startswith("/"):
        names = names[1:]
    if names and names[-1] == "":
        names = names[:-1]  # the trailing '/' a prefix needs and other paths may have
    for name in names:
        if name in (".", ".."):
            return (
                f"must not contain {name!r} as a folder name: a path stays inside the "
                "folder it starts from"
            )
    return "must not contain an empty folder name '//'"
