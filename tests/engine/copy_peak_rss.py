"""Run one whole job in a process of its own and print its peak RSS, so that a test measures
the memory of a copy process and nothing the test process holds.

    python -m tests.engine.copy_peak_rss ARGS_JSON

``ARGS_JSON``: ``source_root`` (a local folder), ``destination`` (the address's fields but
its secret, which comes in ``$SHARELIFT_TEST_OSS_SECRET``), ``work_dir``, ``workers`` and
``subtask_files``.
Prints one JSON line: the job's summary counts and ``peak_rss_mb``, this process's
``VmHWM`` (the local source copies on threads, so every copy thread is in it).

Why ``VmHWM`` and not ``ru_maxrss``: Linux carries the parent's peak RSS over fork and
exec into the child's ``ru_maxrss`` (the forked copy of the parent's memory counts as the
child's until exec), so a child of a big pytest process reported the parent's 332 MB.
``VmHWM`` is the peak of the memory this program mapped since its exec.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SECRET_ENV = "SHARELIFT_TEST_OSS_SECRET"


def main(argv: list[str]) -> int:
    from sharelift.addresses import DestinationAddress, SourceAddress
    from sharelift.engine import runner
    from sharelift.engine.jobs import JobSpec
    from sharelift.secret import Secret

    args: dict[str, Any] = json.loads(argv[0])
    fields = dict(args["destination"])
    if fields["kind"] == "oss":
        fields["access_key_secret"] = Secret(os.environ[SECRET_ENV])
    destination = DestinationAddress(**fields)
    source = SourceAddress(name="src", protocol="local", path=args["source_root"])
    job = JobSpec(
        name="peak-rss",
        source="src",
        destination=fields["name"],
        subtask_files=args["subtask_files"],
    )
    summary = runner.run_job(
        job, source, destination, work_dir=args["work_dir"], workers=args["workers"]
    )
    peak_kb = _vm_hwm_kb()
    print(
        json.dumps(
            {
                "files_copied": summary["files_copied"],
                "files_failed": summary["files_failed"],
                "bytes_copied": summary["bytes_copied"],
                "peak_rss_mb": peak_kb / 1024,
            }
        )
    )
    return 0


def _vm_hwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
