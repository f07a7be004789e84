"""sharelift on this machine without a deployment: the Airflow the demo starts
(``local.airflow``) and the embedded OSS-compatible server (``local.ossd`` starts
``sharelift ossd``), both on 127.0.0.1 with ports picked free.

They are product code because users run them (``sharelift demo``, trials without a cloud
account); the NFS, SMB and PostgreSQL servers that only the tests and the benchmark need
live on the tests' side, in ``tests/servers/``.
"""

from __future__ import annotations


class LocalServerError(RuntimeError):
    """A local server could not be started or answered with an error (the message carries
    the tail of its log)."""
