"""Real servers on 127.0.0.1 for tests, the demo and the benchmark.

Each server class (``nfs.NfsServer``, ``smb.SmbServer``, ``oss.OssServer``) picks free
loopback ports, starts the real daemon (nfs-ganesha, Samba's smbd, ``sharelift ossd``)
with its state in a work folder of its own, waits until it answers, and stops every
process it started (``stop()`` or the context manager). Failures raise ``TestbedError``
with the tail of the daemon's log, so a broken set-up says why; a program or module that is
not installed is found before anything starts (``prerequisites``) and its error names the
Debian package to install.
"""

from __future__ import annotations


class TestbedError(RuntimeError):
    """A test-bed server could not be started (the message carries its log tail)."""

    __test__ = False  # not a pytest test class
