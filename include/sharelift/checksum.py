"""CRC-64 as OSS computes it (CRC-64/ECMA-182 in its reflected "XZ" form).

OSS returns this value in ``x-oss-hash-crc64ecma`` as an unsigned decimal string. oss2
computes it with crcmod, much slower; fastcrc does the same sum far faster and releases
the GIL, so we compute it once, on the fly, as bytes are read from the source (on the
read-ahead thread for large files, ``sharelift.storage.read_ahead``), and tell oss2 not to
compute it again (``enable_crc=False``). anycrc provides ``combine`` so
that the CRC of a multipart object can be joined from its parts' CRCs without re-reading.
"""

from __future__ import annotations

import anycrc
import fastcrc

_COMBINER = anycrc.Model("CRC64-XZ")


def crc64(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """CRC-64 of ``data``, continuing from ``initial`` (the CRC of what came before)."""
    if not data:
        return initial
    return fastcrc.crc64.xz(data, initial=initial) if initial else fastcrc.crc64.xz(data)


def crc64_combine(crc_first: int, crc_second: int, length_second: int) -> int:
    """CRC-64 of A+B from crc(A), crc(B) and len(B)."""
    if length_second == 0:
        return crc_first
    return int(_COMBINER.combine(crc_first, crc_second, length_second))


class Crc64:
    """Running CRC-64 over a stream of chunks."""

    __slots__ = ("value", "length")

    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.value = crc64(data, self.value)
        self.length += len(data)

    def extend(self, crc: int, length: int) -> None:
        """Continue with ``length`` bytes whose own CRC-64 ``crc`` was computed elsewhere
        (on a read-ahead thread): a combine, without touching the bytes."""
        self.value = crc64_combine(self.value, crc, length)
        self.length += length
