"""How a file name is written in the report's lists: one escaping rule for every name.

File servers hold names that are not valid UTF-8 (Latin-1 and Shift-JIS names on old
servers), and names with tabs, newlines or '%' in them. The lists are tab-separated lines,
so every field that holds a name (and the error description, which may quote one) is
written by this rule, and every line splits into the same fields whatever the names:

    The name's bytes, as UTF-8, except that '%', every byte that is not part of valid
    UTF-8, and the UTF-8 bytes of control characters (U+0000-U+001F, U+007F-U+009F) and
    of the line and paragraph separators U+2028 and U+2029 are written as ``%XX``
    (two upper-case hex digits per byte).

``urllib.parse.unquote_to_bytes`` gives back the exact bytes of the name
(``unescape_bytes``); ``urllib.parse.unquote(text, errors="surrogateescape")`` the name as
Python's ``os`` functions spell it (``unescape_field``).

Inside sharelift a name that is not valid UTF-8 arrives from a walk as a ``str`` with
lone surrogates (Python's 'surrogateescape' for POSIX bytes; an unpaired UTF-16 surrogate
from an SMB server is written as its WTF-8 bytes). Such a ``str`` cannot be stored in
Parquet, PostgreSQL or an OSS key, so the scan records the entry as an error row under the
escaped spelling of its path (``stored_path``) with the reason ``NOT_UTF8_REASON``; the
lists recognise such rows by that reason and write their names as stored, not escaped
twice. Known limit: if one folder holds a name that is not UTF-8 and a UTF-8 name spelled
exactly like its escaped form (say ``caf%E9`` beside ``caf<0xE9>``), both are recorded
under that spelling and the state database keeps one outcome for the two.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_to_bytes

NOT_UTF8_REASON = (
    "name is not valid UTF-8: not migrated (OSS object names must be UTF-8); "
    "the lists show its undecodable bytes as hex escapes"
)

# Everything the rule escapes, as characters of a Python str (surrogates included).
_SPECIAL = re.compile("[%\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    try:  # U+DC80-U+DCFF: one undecodable byte ('surrogateescape'), else UTF-8
        data = ch.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # another lone surrogate (SMB, UTF-16): its WTF-8 bytes
        data = ch.encode("utf-8", "surrogatepass")
    return "".join(f"%{b:02X}" for b in data)


def escape_field(text: str) -> str:
    """``text`` written by the rule of this module (a no-op for most names)."""
    # A printable str holds none of the characters the rule escapes but '%' (control
    # characters, separators and surrogates are not printable): a quick way out.
    if (text.isprintable() and "%" not in text) or _SPECIAL.search(text) is None:
        return text
    return _SPECIAL.sub(_escape_char, text)


def unescape_field(text: str) -> str:
    """The inverse of ``escape_field``: undecodable bytes come back as lone surrogates."""
    return unquote(text, errors="surrogateescape") if "%" in text else text


def unescape_bytes(text: str) -> bytes:
    """The exact bytes of a name written by ``escape_field``."""
    return unquote_to_bytes(text)


def is_storable(text: str) -> bool:
    """False for a str that cannot be encoded as UTF-8 (a name that was not UTF-8)."""
    return text.isascii() or _SURROGATE.search(text) is None


def stored_path(path: str) -> str:
    """The spelling under which the scan records a path that is not storable."""
    return path if is_storable(path) else escape_field(path)


def storable_text(text: str) -> str:
    """A message that may quote a name, made storable (names escaped by the rule)."""
    return text if is_storable(text) else _SURROGATE.sub(_escape_char, text)
