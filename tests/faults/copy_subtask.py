"""Copy the fault suite's one subtask in a process of its own, so that a test can SIGKILL it
mid-copy (nothing runs on the way out: no ``except``, no ``finally``).

    python -m tests.faults.copy_subtask ARGS_JSON

``ARGS_JSON``: ``tmp_path``, ``source_root``, ``destination`` (the address's fields but its
secret, which comes in ``$SHARELIFT_TEST_OSS_SECRET``), ``transfer`` (``TransferConfig``
sizes and ``checkpoint_dir``) and ``run_id``. Prints the subtask's counts as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

SECRET_ENV = "SHARELIFT_TEST_OSS_SECRET"


def args_for(copy: Any) -> str:
    """The command-line JSON for ``copy`` (a ``tests.faults.conftest.Copy``)."""
    address = copy.destination_address
    transfer = copy.transfer
    return json.dumps(
        {
            "tmp_path": str(copy.tmp_path),
            "source_root": str(copy.source_root),
            "destination": {
                "name": address.name,
                "kind": address.kind,
                "endpoint": address.endpoint,
                "bucket": address.bucket,
                "access_key_id": address.access_key_id,
                "prefix": address.prefix,
                "region": address.region,
            },
            "transfer": {
                "multipart_threshold": transfer.multipart_threshold,
                "part_size": transfer.part_size,
                "max_parallel_parts": transfer.max_parallel_parts,
                "checkpoint_dir": transfer.checkpoint_dir,
            },
            "run_id": copy.run_id,
        }
    )


def main(argv: list[str]) -> int:
    from sharelift.addresses import DestinationAddress, SourceAddress
    from sharelift.secret import Secret
    from sharelift.storage import TransferConfig
    from tests.faults.conftest import QUICK, Copy

    args = json.loads(argv[0])
    destination = DestinationAddress(
        **args["destination"], access_key_secret=Secret(os.environ[SECRET_ENV])
    )
    copy = Copy(
        Path(args["tmp_path"]),
        Path(args["source_root"]),
        SourceAddress(name="src", protocol="local", path=args["source_root"]),
        destination,
        TransferConfig(**args["transfer"], retry=QUICK),
        run_id=args["run_id"],
    )
    counts, _ = copy.run()
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
