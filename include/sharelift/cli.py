"""The ``sharelift`` command. Each sub-command lives in its own module and is imported lazily."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, help). Each module has ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "ossd": ("sharelift.ossd.cli", "run the OSS-compatible object server (tests, demo, bench)"),
    "testbed": ("sharelift.testbed.cli", "start the loopback NFS/SMB/OSS test-bed servers"),
    "demo": ("sharelift.demo", "run the demo migration on generated sample files"),
    "runs": ("sharelift.runs_cli", "list the runs of jobs with their states, counts and reports"),
    "flow-control": (
        "sharelift.flowcontrol_cli",
        "set, show or clear a job's live bandwidth limit",
    ),
    "retry": ("sharelift.retry_cli", "retry a failed run: migrate exactly its error list"),
    "airflow-setup": (
        "sharelift.airflow.setup_cli",
        "create the copy pool (2 slots per CPU, 4-20) and work folder",
    ),
}


def main(argv: list[str] | None = None) -> int:
    from sharelift import __version__

    parser = argparse.ArgumentParser(prog="sharelift", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sharelift {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text)
        sp.set_defaults(_module=module_name)
        try:
            importlib.import_module(module_name).add_arguments(sp)
        except ImportError:  # a command whose module is not there yet
            sub._name_parser_map.pop(name, None)  # noqa: SLF001
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)  # noqa: SLF001
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
