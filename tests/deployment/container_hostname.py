"""``[core] hostname_callable`` of natively run compose replicas: ``$HOSTNAME``.

In a container ``socket.getfqdn()`` is the container's own name; native processes all
share the machine's, so ``NativeCompose`` sets ``HOSTNAME`` per replica and points Airflow
here, and the task instances' ``hostname`` names the worker that ran them.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("HOSTNAME") or socket.getfqdn()
