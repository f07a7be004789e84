"""Real servers on 127.0.0.1 for the tests and the benchmark: nfs-ganesha (``nfs``), Samba's
smbd (``smb``) and PostgreSQL (``postgres``).

Each server class picks free loopback ports, starts the real daemon with its state in a
work folder of its own, waits until it answers, and stops every process it started
(``stop()`` or the context manager). Failures raise ``TestbedError`` with the tail of the
daemon's log, so a broken set-up says why; a program or module that is not installed is
found before anything starts (``prerequisites``) and its error names the Debian package to
install. The Airflow and OSS-compatible servers the demo also uses are product code, in
``sharelift.local``.
"""

from __future__ import annotations

from sharelift.local import LocalServerError

# One error type for every server a test starts, local (product) or test-only.
TestbedError = LocalServerError
