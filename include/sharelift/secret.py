"""A string that never shows itself.

Passwords and AccessKeySecrets travel inside ``Secret`` so that a stray ``repr``, f-string,
log line, XCom or exception message prints ``***`` instead of the value. Only the client
library call that needs the value calls ``reveal()``.
"""

from __future__ import annotations

from sharelift.errors import register_secret


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "***" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling (e.g. to a worker process) must still carry the value; it never prints.
        return (Secret, (self._value,))
