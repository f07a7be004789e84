"""Include/exclude patterns over relative paths.

Patterns are shell globs matched against the whole relative path (``*.tmp``,
``logs/**``, ``**/cache/*``); ``**`` crosses folders, ``*`` does not. A file is taken when
it matches some include pattern (or there are none) and no exclude pattern. We translate
globs to regular expressions by hand because ``fnmatch`` lets ``*`` cross '/' and
``pathlib.PurePath.full_match`` (which does not) needs Python 3.13.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from sharelift.errors import ConfigError


def validate_patterns(patterns: Sequence[str], field_name: str) -> None:
    for p in patterns:
        if not isinstance(p, str) or not p.strip():
            raise ConfigError(field_name, f"patterns must be non-empty strings (got {p!r})")
        if p.startswith("/"):
            raise ConfigError(
                field_name,
                f"patterns are relative to the source folder; drop the leading '/' in {p!r}",
            )
        try:
            _compile(p)
        except re.error as exc:
            raise ConfigError(field_name, f"bad pattern {p!r}: {exc}") from None


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    regex = "".join(out)
    # A pattern without '/' matches the name in any folder, like .gitignore does.
    if "/" not in pattern:
        regex = f"(?:.*/)?{regex}"
    return re.compile(f"^{regex}$", re.S)


class PathFilter:
    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self._include = [_compile(p) for p in include]
        self._exclude = [_compile(p) for p in exclude]

    def __call__(self, path: str) -> bool:
        if self._include and not any(r.match(path) for r in self._include):
            return False
        return not any(r.match(path) for r in self._exclude)
