"""How many bytes of file data one process may hold in memory at once, shared by its threads.

A multipart upload holds each part whole in memory until the server has stored it (a part
that fails is sent again from memory: the source is not read twice). Each file bounded
its own parts (``TransferConfig.max_parallel_parts``), but files in flight multiply: one
process copies several subtasks on threads, each with several files in flight, so 128 MiB
files took parts of 16 MiB by the dozen. Every multipart put of the process takes its
parts' bytes from one ``ByteBudget`` (``PARTS``) before it reads them and gives them back
once they are stored, so memory stays bounded whatever the file sizes and the thread
counts; a put that finds the budget spent waits for another's part to be stored.

The limit: ``SHARELIFT_PART_BUFFER_MB`` (default 96 MiB, at least one part's worth is
always granted: a part larger than the whole budget is read when nothing else is held).

Bounding the live bytes is not enough: glibc gives each thread a malloc arena of its own
(up to 8 per CPU), and the chunks of 1 MiB that a thread read, freed on the threads that
sent them, stay resident in their arena. With a dozen threads each arena kept its own peak
and the process held twice its live bytes. ``limit_malloc_arenas`` (called when an OSS
destination is opened, before the copy threads start) lets every thread share one arena:
Python's small objects do not use it (pymalloc), the large allocations that do are few
(one per chunk). Only there: into a local folder the buffers stay small anyway (a few
read-ahead chunks per file), so other processes keep glibc's default.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

DEFAULT_LIMIT_MB = 96
ENV_LIMIT = "SHARELIFT_PART_BUFFER_MB"


class ByteBudget:
    """A counting semaphore of bytes. ``take`` blocks until the bytes fit."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a byte budget needs a positive limit")
        self.limit = limit
        self._used = 0
        self._peak = 0
        self._cond = threading.Condition()

    def take(self, nbytes: int) -> int:
        """Wait until ``nbytes`` fit in the budget and take them; returns what was taken,
        for ``give``. More than the whole limit is granted once nothing else is held."""
        nbytes = max(0, nbytes)
        with self._cond:
            while self._used and self._used + nbytes > self.limit:
                self._cond.wait()
            self._used += nbytes
            self._peak = max(self._peak, self._used)
        return nbytes

    def give(self, nbytes: int) -> None:
        with self._cond:
            self._used -= nbytes
            if self._used < 0:
                raise RuntimeError("more bytes given back to the budget than were taken")
            self._cond.notify_all()

    @property
    def used(self) -> int:
        return self._used

    @property
    def peak(self) -> int:
        """The most bytes held at once so far."""
        return self._peak


def limit_from_env() -> int:
    """``SHARELIFT_PART_BUFFER_MB`` in bytes (16 MiB .. 64 GiB), else the default."""
    try:
        mb = int(os.environ.get(ENV_LIMIT, DEFAULT_LIMIT_MB))
    except ValueError:
        mb = DEFAULT_LIMIT_MB
    return max(16, min(65536, mb)) * 1024 * 1024


PARTS = ByteBudget(limit_from_env())

_M_ARENA_MAX = -8  # glibc's malloc.h
_arenas_limited = False


def limit_malloc_arenas() -> bool:
    """One glibc malloc arena for the whole process, unless ``MALLOC_ARENA_MAX`` says
    otherwise; True when set. Does nothing where the C library has no ``mallopt`` (musl,
    macOS). Threads started before keep the arena they have."""
    global _arenas_limited
    if _arenas_limited or "MALLOC_ARENA_MAX" in os.environ:
        return _arenas_limited
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _arenas_limited = bool(mallopt(_M_ARENA_MAX, 1))
    return _arenas_limited
