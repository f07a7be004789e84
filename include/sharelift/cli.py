"""The ``sharelift`` command: each sub-command lives in its own module, imported lazily."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, help). Each module has ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("sharelift.demo", "run a demo migration of generated sample files, no cloud needed"),
    "runs": ("sharelift.runs_cli", "list the runs of jobs with their states, counts and reports"),
    "flow-control": (
        "sharelift.flowcontrol_cli",
        "set, show or clear a job's live bandwidth limit",
    ),
    "retry": ("sharelift.retry_cli", "retry a failed run: migrate exactly its error list"),
    "cleanup": (
        "sharelift.cleanup_cli",
        "remove a job's incomplete multipart uploads and checkpoints older than an age",
    ),
    "report": (
        "sharelift.report_cli",
        "store a run's report again (after the bucket refused it), from the state database",
    ),
    "airflow-setup": (
        "sharelift.airflow.setup_cli",
        "once per deployment: create the copy pool (2 slots per CPU, 4-20) and work folder",
    ),
    "config": ("sharelift.config_cli", "show the state database and work folder in use, and why"),
    "ossd": (
        "sharelift.ossd.cli",
        "run the embedded OSS-compatible object server (demo, trials without a cloud account)",
    ),
}

DESCRIPTION = """\
Migrate NFS exports, SMB shares and local folders into Alibaba Cloud OSS buckets through
Apache Airflow. Jobs run as Airflow DAGs (trigger sharelift_migrate, or declare a job file);
these commands show their runs, change a running job's bandwidth limit, retry failed runs,
remove leftovers of failed uploads, prepare a deployment and run a demo."""


def main(argv: list[str] | None = None) -> int:
    from sharelift import __version__

    parser = argparse.ArgumentParser(
        prog="sharelift",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="`sharelift COMMAND --help` explains each command.",
    )
    parser.add_argument("--version", action="version", version=f"sharelift {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text)
        sp.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(sp)
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)  # noqa: SLF001
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
