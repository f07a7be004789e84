"""``sharelift demo``: a migration you can watch, with no cloud account.

Generates a small sample share (awkward names included), starts the embedded
OSS-compatible server and Airflow (scheduler, api-server, dag-processor, triggerer) on
127.0.0.1, runs the project's set-up (the copy pool), creates the two addresses as Airflow
connections, and triggers the declared job ``include/jobs/demo-share.yaml`` through the
REST API: scan, partition, copy (mapped), verify, report. It prints the report's summary
and where the lists are, runs the job a second time to show that nothing is copied twice,
and stops everything (``--keep-running`` leaves Airflow up to look at the UI).

``--source nfs`` or ``--source smb`` serves the same files through nfs-ganesha or Samba on
loopback; ``--engine-only`` skips Airflow and runs the same job's steps in-process
(``sharelift.engine.runner``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SAMPLE_NAMES = [
    "reports/2024/q1 summary.txt",
    "reports/2024/q2 #draft.txt",
    "photos/été/plage 1.jpg",
    "photos/été/plage 2.jpg",
    "data/readings+raw.csv",
    "data/100% done.txt",
    "unicode/Hello, 世界.txt",
    "empty.txt",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        choices=["local", "nfs", "smb"],
        default="local",
        help="serve the sample share from a local folder, nfs-ganesha or Samba",
    )
    parser.add_argument(
        "--workdir", default=".work/demo", help="where sample files and server data go"
    )
    parser.add_argument("--files", type=int, default=200, help="number of generated files")
    parser.add_argument("--engine-only", action="store_true", help="no Airflow: copy in-process")
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave Airflow and the servers running until Ctrl-C (to browse the UI)",
    )


def make_sample_share(root: Path, files: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_NAMES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"" if name == "empty.txt" else rng.randbytes(rng.randint(10, 4000)))
    for i in range(max(0, files - len(SAMPLE_NAMES))):
        path = root / f"bulk/{i % 10:02d}/file-{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(0, 64 * 1024)))
    big = root / "media/big-video.bin"
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(rng.randbytes(80 * 1024 * 1024 + 123))  # above the multipart threshold
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)


def run(args: argparse.Namespace) -> int:
    with stop_on_signals():
        if args.engine_only:
            return run_engine_only(args)
        return run_through_airflow(args)


class Stopped(SystemExit):
    """A signal asked the demo to stop; ``finally`` blocks stop every server it started."""


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM, SIGHUP and SIGINT end the demo through its ``finally`` blocks.

    SIGINT gets a handler of its own too: a shell script starts background jobs with SIGINT
    ignored, and Python then installs no KeyboardInterrupt for it. While the servers are
    being stopped, further signals are ignored so that a second one cannot cut that short.
    """
    signals = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, _frame: object) -> None:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        print(
            f"\nsharelift demo: {signal.Signals(signum).name}: stopping everything ...", flush=True
        )
        raise Stopped(128 + signum)

    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _start_source_server(kind: str, share: Path, work: Path, servers: list) -> object:  # type: ignore[type-arg]
    """Serve ``share`` over NFS or SMB; returns the server (with ``source_address``).

    The NFS and SMB servers are the repository's test servers (``tests/servers/``), not part
    of the installed package: this works from a clone, where ``sharelift demo`` is run."""
    import sys

    repo = str(_repo_root())
    if not (_repo_root() / "tests" / "servers").is_dir():
        raise SystemExit(
            "sharelift demo: --source nfs|smb serves the share with the repository's test "
            "servers (tests/servers/); run it from a clone of the repository"
        )
    if repo not in sys.path:
        sys.path.insert(0, repo)
    if kind == "nfs":
        from tests.servers.nfs import NfsServer

        server: object = NfsServer(share, work / "nfs")
    else:
        from tests.servers.smb import SmbServer

        server = SmbServer(share, work / "smb")
    server.start()  # type: ignore[attr-defined]
    servers.append(server)
    return server


def _connection_for_source(kind: str, share: Path, server: Any) -> dict[str, Any]:
    if kind == "local":
        return {"conn_type": "sharelift_local", "extra": {"path": str(share)}}
    if kind == "nfs":
        return {
            "conn_type": "sharelift_nfs",
            "host": server.host,
            "port": server.nfs_port,  # type: ignore[attr-defined]
            "schema": server.export_path,
            "extra": {"mount_port": server.mount_port},
        }  # type: ignore[attr-defined]
    return {
        "conn_type": "sharelift_smb",
        "host": server.host,
        "port": server.port,  # type: ignore[attr-defined]
        "schema": server.share,
        "login": server.username,  # type: ignore[attr-defined]
        "password": server.password.reveal(),
    }  # type: ignore[attr-defined]


def _prepare(args: argparse.Namespace) -> tuple[Path, Path]:
    work = Path(args.workdir).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    work.chmod(0o755)
    share = work / "share"
    print(
        f"sharelift demo: generating {args.files} sample files (+1 of 80 MB) in {share}", flush=True
    )
    make_sample_share(share, args.files)
    return work, share


def _repo_root() -> Path:
    here = Path(__file__).resolve().parents[2]
    if (here / "dags").is_dir():
        return here
    return Path.cwd()


def run_through_airflow(args: argparse.Namespace) -> int:
    import subprocess
    import sys

    from sharelift.engine.report import REPORT_ROOT
    from sharelift.local.airflow import AirflowServer
    from sharelift.local.ossd import OssServer

    work, share = _prepare(args)
    repo = _repo_root()
    servers: list = []  # type: ignore[type-arg]
    dag_id = "sharelift_job_demo_share"
    try:
        oss = OssServer(work / "ossd")
        oss.start()
        servers.append(oss)
        oss.create_bucket("sharelift-demo")
        print(
            f"sharelift demo: OSS-compatible server at {oss.endpoint}, bucket sharelift-demo",
            flush=True,
        )
        source_server = (
            None
            if args.source == "local"
            else _start_source_server(args.source, share, work, servers)
        )
        print("sharelift demo: starting Airflow (about a minute) ...", flush=True)
        airflow = AirflowServer(work / "airflow", repo / "dags", repo / "plugins")
        # The state database and work folder where every sharelift command finds them once
        # AIRFLOW_HOME points at this home (sharelift.config): $AIRFLOW_HOME/sharelift.
        airflow.extra_env["SHARELIFT_WORK_DIR"] = str(airflow.airflow_home / "sharelift")
        servers.append(airflow)  # before start: a signal during start-up stops it too
        airflow.start()
        print(
            f"sharelift demo: Airflow UI at {airflow.base_url} (login {airflow.username} / "
            f"{airflow.password})",
            flush=True,
        )
        subprocess.run(
            [sys.executable, "-m", "sharelift.cli", "airflow-setup"], env=airflow.env, check=True
        )
        airflow.set_connection(
            "sharelift_demo_share", **_connection_for_source(args.source, share, source_server)
        )  # type: ignore[arg-type]
        airflow.set_connection("sharelift_demo_bucket", **oss.connection_fields("sharelift-demo"))
        airflow.wait_for_dag(dag_id, timeout=180)
        airflow.unpause(dag_id)
        exit_code = 0
        for label in ("first run", "second run (nothing changed)"):
            run_id = airflow.trigger(dag_id, {})
            print(
                f"sharelift demo: {label}: triggered {dag_id} run {run_id}; waiting ...", flush=True
            )
            state = airflow.wait_for_run(dag_id, run_id, timeout=900)
            summary = _read_summary(oss, REPORT_ROOT, run_id)
            print(f"sharelift demo: {label}: Airflow run {state}")
            print(summary, flush=True)
            saved = _save_report(oss, run_id, work / "reports")
            if saved:
                print(f"sharelift demo: the report's lists, copied out of the bucket: {saved}")
            if state != "success":
                exit_code = 1
        print(
            "sharelift demo: to list these runs with the sharelift commands:\n"
            f"    export AIRFLOW_HOME={airflow.airflow_home}\n"
            "    .venv/bin/sharelift runs demo-share",
            flush=True,
        )
        if args.keep_running:
            print(
                f"sharelift demo: Airflow keeps running at {airflow.base_url}; press Ctrl-C to stop.",
                flush=True,
            )
            while True:
                time.sleep(3600)
        else:
            print(
                "sharelift demo: everything is stopped now; to browse the Airflow UI and the "
                "sharelift page (/sharelift/) after the runs: bash scripts/setup.sh --keep-running",
                flush=True,
            )
        return exit_code
    finally:
        for server in reversed(servers):
            server.stop()


def _save_report(oss: object, run_id: str, folder: Path) -> Path | None:
    """Copy the run's report folder out of the embedded server onto disk, where it can be
    read after the demo stopped that server."""
    from sharelift.engine.report import list_names, report_folder
    from sharelift.storage import open_destination

    address = oss.destination_address(bucket="sharelift-demo")  # type: ignore[attr-defined]
    prefix = report_folder("demo-share", run_id)
    target = folder / prefix.rstrip("/").rsplit("/", 1)[-1]
    with open_destination(address) as dest:
        for name in list_names("demo-share").values():
            try:
                f = dest.open(prefix + name)
            except FileNotFoundError:
                continue
            try:
                target.mkdir(parents=True, exist_ok=True)
                (target / name).write_bytes(f.read())
            finally:
                f.close()
    return target if target.is_dir() else None


def _read_summary(oss: object, report_root: str, run_id: str) -> str:
    from sharelift.engine.report import report_folder
    from sharelift.storage import open_destination

    address = oss.destination_address(bucket="sharelift-demo")  # type: ignore[attr-defined]
    key = report_folder("demo-share", run_id) + "demo-share_summary.txt"
    with open_destination(address) as dest:
        try:
            f = dest.open(key)
        except FileNotFoundError:
            return f"(no report at oss://sharelift-demo/{key})"
        try:
            return f.read().decode()
        finally:
            f.close()


def run_engine_only(args: argparse.Namespace) -> int:
    """The declared job's run without Airflow: the DAG's steps through the engine runner."""
    from sharelift.addresses import SourceAddress
    from sharelift.engine.jobs import JobSpec
    from sharelift.engine.report import format_summary
    from sharelift.engine.runner import run_job
    from sharelift.local.ossd import OssServer

    work, share = _prepare(args)
    servers: list = []  # type: ignore[type-arg]
    try:
        oss = OssServer(work / "ossd")
        oss.start()
        servers.append(oss)
        oss.create_bucket("sharelift-demo")
        dest_address = oss.destination_address(
            name="demo-bucket", bucket="sharelift-demo", prefix="migrated/"
        )
        print(f"sharelift demo: OSS-compatible server at {oss.endpoint}, bucket sharelift-demo")
        if args.source == "local":
            src_address = SourceAddress(name="demo-share", protocol="local", path=str(share))
        else:
            server = _start_source_server(args.source, share, work, servers)
            src_address = server.source_address(name="demo-share")  # type: ignore[attr-defined]
        print(
            f"sharelift demo: migrating {src_address.display_url()} -> "
            f"{dest_address.display_url()}",
            flush=True,
        )
        job = JobSpec(name="demo-share", source=src_address.name, destination=dest_address.name)
        runs = []
        for n, label in enumerate(("first run", "second run (nothing changed)"), start=1):
            summary = run_job(
                job,
                src_address,
                dest_address,
                work_dir=str(work / "sharelift"),
                run_id=f"engine__{n}",
            )
            print(f"sharelift demo: {label}")
            print(format_summary(summary), flush=True)
            runs.append(summary)
        first, second = runs
        bad = first["state"] == "Failed" or bool(first.get("verify_mismatches"))
        return 1 if bad or second["files_copied"] else 0
    finally:
        for server in reversed(servers):
            server.stop()
