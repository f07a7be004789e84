"""The errors sharelift raises, grouped by what the operator has to do about them.

* ``ConfigError``: bad input (a field broke a rule). Nothing was changed.
* ``AddressError``: an address is Invalid (unreachable, wrong credentials, missing
  export/share/bucket). Jobs fail fast with it ("Create Failed").
* ``FileError``: one file failed; the run goes on and the file lands in the error list.
* ``UnsupportedLibraryError``: an installed client library is not a version sharelift
  supports; the message says which was found and what to install.

Messages never contain secrets: callers build them from names and causes only, and
``scrub`` is applied to any text that came from a library (which may echo a URL or header).
"""

from __future__ import annotations

import re


class ShareliftError(Exception):
    """Base of every error sharelift raises on purpose."""

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled by attributes, not by calling __init__ again: the subclasses take other
        # arguments than the message in ``args``, and an error that cannot be unpickled
        # makes a process pool hang instead of failing the subtask that raised it.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(
    cls: type[ShareliftError], args: tuple[object, ...], state: dict[str, object]
) -> ShareliftError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(ShareliftError, ValueError):
    """A setting broke a rule. ``field`` names it, the message says which rule."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class AddressError(ShareliftError):
    """An address is Invalid: the operator must fix its configuration or the server."""

    def __init__(self, address: str, cause: str) -> None:
        self.address = address
        self.cause = scrub(cause)
        super().__init__(f"address {address!r} is invalid: {self.cause}")


class UnsupportedLibraryError(ShareliftError):
    """A client library is not the version a backend was written against (a backend that
    reaches below a library's public API would otherwise fail in odd ways after an upgrade).
    """

    def __init__(self, library: str, expected: str, found: str, remedy: str) -> None:
        self.library = library
        self.expected = expected
        self.found = found
        super().__init__(f"{library}: sharelift supports {expected}, found {found}; {remedy}")


class FileError(ShareliftError):
    """One file could not be migrated. The message is the reason shown in the error list.

    ``transient``: the cause may go away (a server restarting, a connection reset, bytes
    damaged on the way), so copying the whole file again may succeed."""

    reason_code = "error"

    def __init__(self, path: str, reason: str, *, transient: bool = False) -> None:
        self.path = path
        self.reason = scrub(reason) or type(self).__name__
        self.transient = transient
        super().__init__(f"{path}: {self.reason}")


class SourceFileNotFound(FileError):
    """The file was listed by the scan but is gone now (deleted or renamed during the run)."""

    reason_code = "source-file-not-found"


class SourceFilePermissionDenied(FileError):
    """The server refused to let us read the file."""

    reason_code = "source-permission-denied"


class SourceFileChanged(FileError):
    """The file changed while we read it (size differs from the scan)."""

    reason_code = "source-file-changed"


class NotAFile(FileError):
    """The path is a directory, symlink or special file, which we do not copy."""

    reason_code = "not-a-file"


class DestinationError(FileError):
    """The destination refused or failed to store the object."""

    reason_code = "destination-error"


class ChecksumMismatch(FileError):
    """The destination's CRC-64 differs from the one computed from the source bytes."""

    reason_code = "checksum-mismatch"


_SECRET_PATTERNS = [
    # user:password@host in URLs
    (re.compile(r"(?P<pre>[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.I), r"\g<pre>***@"),
    # Authorization headers and signatures
    (re.compile(r"(Authorization['\"]?\s*[:=]\s*['\"]?)[^'\",\n]+", re.I), r"\1***"),
    (
        re.compile(
            r"((?:Signature|x-oss-signature|OSSAccessKeySecret|access_key_secret|"
            r"AccessKeySecret|password|passwd|secret)['\"]?\s*[:=]\s*['\"]?)[^'\"&,\s]+",
            re.I,
        ),
        r"\1***",
    ),
]

_KNOWN_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret so that ``scrub`` removes it verbatim from any later message."""
    if value and len(value) >= 4:
        _KNOWN_SECRETS.add(value)


def scrub(text: str) -> str:
    """Remove anything that looks like a secret from a message that came from a library."""
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text
