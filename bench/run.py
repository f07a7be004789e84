"""The benchmark: sharelift against rclone, a plain oss2 uploader, cp and the raw read speed.

    .venv/bin/python bench/run.py [--quick] [--m-files N] [--keep] [--only REGEX]

Generates the data sets (``datagen``) in a scratch folder ``/tmp/sharelift-bench-*``,
serves them with the test-bed servers on 127.0.0.1 (nfs-ganesha, Samba, ``sharelift
ossd``), runs every measurement on the same data in one go, prints the tables and the
targets with PASS/MISS, writes ``bench/results/<date>-<host>[-quick].md``, then stops every
server and removes the scratch folder (``--keep`` keeps it). See bench/README.md.

It is a benchmark, not a test: nothing here asserts a timing. The machine is shared and
noisy; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _path in (BENCH, REPO):  # bench's modules; the test servers in tests/servers/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import cases  # noqa: E402
import datagen  # noqa: E402
import report  # noqa: E402

DAG_ID = "sharelift_migrate"
SETS = {"S": "small", "B": "big", "M": "many"}
SOURCES = ("local", "nfs", "smb")
MIB = 1024 * 1024
AIRFLOW_PSS_EVERY = 5.0  # seconds between PSS sweeps of the Airflow tree (see airflow_row)

MODES: dict[str, dict[str, Any]] = {
    "quick": {
        "s_files": 2000,
        "b_files": 2,
        "m_files": 100_000,
        "workers": [2],
        "transfers": [4, 16],
        "concurrency": [4, 8, 16],
        "airflow_matrix": False,
        "fit_subtasks": (4, 20),
        "plan_files": 1_000_000,
    },
    "full": {
        "s_files": 10_000,
        "b_files": 8,
        "m_files": 1_000_000,
        "workers": [2, 4],
        "transfers": [4, 16],
        "concurrency": [4, 8, 16],
        "airflow_matrix": True,
        "fit_subtasks": (10, 50),
        "plan_files": 10_000_000,
    },
}


@dataclass
class Row:
    kind: str  # engine, airflow, rclone, oss2, cp, read, scan, find, lsf, crc
    source: str  # local, nfs, smb ('-' when not a sharelift source)
    dest: str  # local, oss, '-'
    dataset: str  # S, B, M
    variant: str = ""
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    rss_mb: float | None = None  # summed over the process tree
    rss_proc_mb: float | None = None  # the largest single process of the tree
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        route = self.source if self.dest == "-" else f"{self.source}->{self.dest}"
        return f"{self.kind} {route} {self.dataset} {self.variant}".strip()

    @property
    def files_s(self) -> float:
        return self.files / self.seconds if self.seconds and not self.error else 0.0

    @property
    def mb_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds and not self.error else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["label"] = self.label
        d["files_s"] = self.files_s
        d["mb_s"] = self.mb_s
        return d


class Rss(NamedTuple):
    """Peak RSS in MB of a case: summed over its process tree, and of its largest process."""

    total: float
    largest: float


class PeakRss:
    """Samples the RSS of a process and all its descendants (every 50 ms): the peak of
    their sum, and the peak of the largest one (the bound a copy process must keep)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.peak_one = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    rss = p.memory_info().rss
                    total += rss
                    self.peak_one = max(self.peak_one, rss)
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak / MIB

    @property
    def largest(self) -> float:
        return self.peak_one / MIB


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mode = "quick" if args.quick else "full"
        self.cfg = dict(MODES[self.mode])
        for key in ("s_files", "b_files", "m_files", "plan_files"):
            if getattr(args, key) is not None:
                self.cfg[key] = getattr(args, key)
        if args.workers:
            self.cfg["workers"] = [int(w) for w in args.workers.split(",")]
        self.spec = datagen.DataSpec(
            s_files=self.cfg["s_files"],
            s_folders=100,
            b_files=self.cfg["b_files"],
            b_mib=128,
            m_files=self.cfg["m_files"],
        )
        self.only = re.compile(args.only) if args.only else None
        self.rows: list[Row] = []
        self.servers: list[Any] = []
        self.started = time.time()
        self.load_start = os.getloadavg()
        self.code_start = code_fingerprint()
        # 0755 all the way down: NFS clients are squashed to nobody, Samba reads as its user.
        self.scratch = Path(tempfile.mkdtemp(prefix="sharelift-bench-", dir="/tmp"))
        self.scratch.chmod(0o755)
        self.data = Path(args.data).resolve() if args.data else self.scratch / "data"
        self.lists = self.scratch / "lists"
        self.lists.mkdir()
        self.child_log = self.scratch / "children.log"
        self.profile_dir = Path(args.profile).resolve() if args.profile else None
        self.case_no = 0
        self.nfs: Any = None
        self.smb: Any = None
        self.oss: Any = None
        self.airflow: Any = None
        self.gen_seconds: dict[str, float] = {}
        self.totals: dict[str, tuple[int, int]] = {}

    # -- logging --------------------------------------------------------------------

    def log(self, text: str) -> None:
        elapsed = time.time() - self.started
        print(f"[{elapsed:6.0f}s] {text}", flush=True)

    def wanted(self, label: str) -> bool:
        return self.only is None or bool(self.only.search(label))

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        if row.error:
            self.log(f"{row.label}: ERROR {row.error}")
        else:
            rss = f", peak RSS {row.rss_mb:,.0f} MB" if row.rss_mb else ""
            if row.rss_proc_mb:
                rss += f" (largest process {row.rss_proc_mb:,.0f} MB)"
            phases = row.extra.get("phases") or {}
            split = " (" + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()) + ")"
            self.log(
                f"{row.label}: {row.files:,} files {row.bytes / 1e6:,.1f} MB in "
                f"{row.seconds:.2f} s = {row.files_s:,.0f} files/s {row.mb_s:,.1f} MB/s{rss}"
                + (split if phases else "")
                + (
                    f", CPU {row.extra['cpu_ms_per_file']:.2f} ms/file"
                    f" (system {row.extra['cpu_sys_ms_per_file']:.2f})"
                    if "cpu_ms_per_file" in row.extra
                    else ""
                )
            )
        self._save_json()
        return row

    def _save_json(self) -> None:
        (self.scratch / "rows.json").write_text(
            json.dumps([r.to_dict() for r in self.rows], indent=1)
        )

    # -- servers and addresses --------------------------------------------------------

    def start_servers(self) -> None:
        from tests.servers.nfs import NfsServer
        from tests.servers.smb import SmbServer

        from sharelift.local.ossd import OssServer

        self.nfs = NfsServer(self.data, self.scratch / "nfs", read_only=True).start()
        self.servers.append(self.nfs)
        self.smb = SmbServer(self.data, self.scratch / "smb").start()
        self.servers.append(self.smb)
        # fsync off: the benchmark measures the clients, not this machine's disk flushes.
        self.oss = OssServer(self.scratch / "ossd", fsync=False).start()
        self.servers.append(self.oss)
        self.oss.create_bucket("bench")
        self.log(
            f"servers: nfs 127.0.0.1:{self.nfs.nfs_port}, smb 127.0.0.1:{self.smb.port}, "
            f"ossd {self.oss.endpoint}"
        )

    def stop_servers(self) -> None:
        if self.airflow is not None:
            with contextlib.suppress(Exception):
                self.airflow.stop()
            self.airflow = None
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.stop()
        self.servers.clear()

    def source(self, source: str, dataset: str) -> dict[str, Any]:
        sub = SETS[dataset]
        if source == "local":
            return {"name": "bench-local", "protocol": "local", "path": str(self.data / sub)}
        if source == "nfs":
            return {
                "name": "bench-nfs",
                "protocol": "nfs",
                "host": self.nfs.host,
                "share": self.nfs.export_path,
                "port": self.nfs.nfs_port,
                "mount_port": self.nfs.mount_port,
                "path": sub,
            }
        return {
            "name": "bench-smb",
            "protocol": "smb",
            "host": self.smb.host,
            "share": self.smb.share,
            "port": self.smb.port,
            "username": self.smb.username,
            "password": self.smb.password.reveal(),
            "path": sub,
        }

    def new_destination(self, dest: str) -> tuple[dict[str, Any], Any]:
        """A fresh, empty destination and the function that empties it again."""
        self.case_no += 1
        if dest == "local":
            folder = self.scratch / "dst" / f"c{self.case_no:03d}"
            folder.mkdir(parents=True)
            address = {"name": "bench-dst", "kind": "local", "path": str(folder)}
            return address, lambda: self.discard(folder)
        bucket = f"bench-c{self.case_no:03d}"
        self.oss.create_bucket(bucket)
        address = {
            "name": "bench-dst",
            "kind": "oss",
            "endpoint": self.oss.endpoint,
            "bucket": bucket,
            "access_key_id": self.oss.access_key_id,
            "access_key_secret": self.oss.access_key_secret.reveal(),
            "region": self.oss.region,
        }
        return address, lambda: self.empty_bucket(bucket)

    def discard(self, folder: Path) -> None:
        """Remove a case's local destination, or, when it holds many files, move it aside
        for the removal at the end of the run: on ext4 without a journal (this machine's),
        the inode allocator skips every inode freed in the last minute or more
        (``recently_deleted``), so thousands of files removed between cases made each file
        the next case created cost up to a few milliseconds of system time (``perf``: 60 %
        of a create loop's CPU in ``recently_deleted``), whichever tool it measured."""
        many = sum(len(names) for _, _, names in os.walk(folder)) > 100
        if not many:
            shutil.rmtree(folder, ignore_errors=True)
            return
        aside = self.scratch / "removed-at-the-end"
        aside.mkdir(exist_ok=True)
        folder.rename(aside / folder.name)

    def empty_bucket(self, name: str) -> None:
        import oss2

        bucket = self.oss.bucket(name)
        keys: list[str] = []
        for obj in oss2.ObjectIteratorV2(bucket):
            keys.append(obj.key)
            if len(keys) == 1000:
                bucket.batch_delete_objects(keys)
                keys = []
        if keys:
            bucket.batch_delete_objects(keys)
        for upload in oss2.MultipartUploadIterator(bucket):
            bucket.abort_multipart_upload(upload.key, upload.upload_id)
        bucket.delete_bucket()

    def file_list(self, dataset: str) -> Path:
        path = self.lists / f"{dataset}.txt"
        if not path.exists():
            path.write_text("\n".join(datagen.file_list(self.data / SETS[dataset])) + "\n")
        return path

    # -- running things -----------------------------------------------------------------

    def run_child(
        self, kind: str, params: dict[str, Any], label: str
    ) -> tuple[dict[str, Any], Rss]:
        cmd = [sys.executable, str(BENCH / "run.py"), "--child"]
        if self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            out = self.profile_dir / (re.sub(r"[^A-Za-z0-9_.=-]+", "_", label) + ".txt")
            cmd = [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--subprocesses",
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(out),
                "--",
                *cmd,
            ]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(BENCH), str(REPO / "include"), env.get("PYTHONPATH", "")]
        )
        with open(self.child_log, "ab") as err:
            err.write(f"\n=== {label}\n".encode())
            err.flush()
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                cwd=str(self.scratch),
            )
            sampler = PeakRss(proc.pid)
            try:
                out_text, _ = proc.communicate(
                    json.dumps({"kind": kind, "params": params}).encode(),
                    timeout=self.args.case_timeout,
                )
            except BaseException:
                proc.kill()
                proc.wait()
                sampler.stop()
                raise
            rss = sampler.stop()
        result = None
        for line in out_text.decode(errors="replace").splitlines():
            if line.startswith(cases.RESULT):
                result = json.loads(line[len(cases.RESULT) :])
        if proc.returncode != 0 or result is None:
            raise RuntimeError(
                f"child exited with {proc.returncode}; see {self.child_log}:\n"
                + datagen_tail(self.child_log)
            )
        # ru_maxrss is exact where the 50 ms samples may miss a short peak; the children's
        # figure is the largest of the worker processes the case waited for.
        largest = max(
            sampler.largest,
            result.get("maxrss_self_mb", 0.0),
            result.get("maxrss_children_mb", 0.0),
        )
        return result, Rss(max(rss, result.get("maxrss_self_mb", 0.0)), largest)

    def run_cmd(
        self, argv: list[str], env: dict[str, str] | None = None, stdout: Path | None = None
    ) -> tuple[float, float]:
        """Run a command; (wall seconds, peak RSS MB of its tree). Raises on failure."""
        out = open(stdout, "wb") if stdout else subprocess.DEVNULL  # noqa: SIM115
        try:
            with open(self.child_log, "ab") as err:
                err.write(f"\n=== {' '.join(argv[:4])}\n".encode())
                err.flush()
                t = time.perf_counter()
                proc = subprocess.Popen(
                    argv, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL
                )
                sampler = PeakRss(proc.pid)
                try:
                    rc = proc.wait(timeout=self.args.case_timeout)
                except BaseException:
                    proc.kill()
                    proc.wait()
                    sampler.stop()
                    raise
                seconds = time.perf_counter() - t
                rss = sampler.stop()
        finally:
            if stdout:
                out.close()  # type: ignore[union-attr]
        if rc != 0:
            raise RuntimeError(f"{argv[0]} exited with {rc}; see {self.child_log}")
        return seconds, rss

    def measure(self, row: Row, fn: Any, *args: Any) -> Row | None:
        """Run ``fn(row, *args)`` (it fills the row) unless filtered out; errors go into the row."""
        if not self.wanted(row.label):
            return None
        try:
            fn(row, *args)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed case must not end the run
            row.error = f"{type(exc).__name__}: {str(exc)[:600]}"
        return self.add(row)

    def fill(self, row: Row, res: dict[str, Any], rss: Rss) -> None:
        row.files, row.bytes, row.seconds = res["files"], res["bytes"], res["seconds"]
        row.rss_mb, row.rss_proc_mb = rss.total, rss.largest
        if res.get("cpu_seconds") and row.files:
            row.extra["cpu_ms_per_file"] = round(1000 * res["cpu_seconds"] / row.files, 3)
            row.extra["cpu_sys_ms_per_file"] = round(1000 * res["cpu_sys_seconds"] / row.files, 3)

    # -- one row each ----------------------------------------------------------------

    def scan_row(self, row: Row, source: str, dataset: str) -> None:
        manifest = str(self.scratch / "scan-state.db")
        params = {"source": self.source(source, dataset), "manifest": manifest}
        self.fill(row, *self.run_child("scan", params, row.label))

    def find_row(self, row: Row, dataset: str) -> None:
        out = self.scratch / "find.txt"
        argv = ["find", str(self.data / SETS[dataset]), "-type", "f", "-printf", "%s %T@ %p\n"]
        row.seconds, row.rss_mb = self.run_cmd(argv, stdout=out)
        row.files = count_lines(out)
        out.unlink()

    def lsf_row(self, row: Row, dataset: str) -> None:
        out = self.scratch / "lsf.txt"
        remote = f":smb:{self.smb.share}/{SETS[dataset]}"
        argv = ["rclone", "lsf", "-R", "--files-only", "--format", "pst", remote]
        row.seconds, row.rss_mb = self.run_cmd(argv, env=self.rclone_env(), stdout=out)
        row.files = count_lines(out)
        out.unlink()

    def read_row(self, row: Row, source: str, dataset: str, processes: int) -> None:
        params = {
            "source": self.source(source, dataset),
            "list": str(self.file_list(dataset)),
            "processes": processes,
        }
        self.fill(row, *self.run_child("read", params, row.label))

    def crc_row(self, row: Row) -> None:
        # The copy lands in memory (tmpfs) where there is one: the local put starts its disk
        # writes as it goes, and this disk's speed swings 2-4x within a run, which drowned
        # the CRC's share (-15 % to +41 % in four runs). In memory the copy is pure CPU, the
        # case where the CRC's share is largest.
        shm = Path("/dev/shm")
        sink = Path(
            tempfile.mkdtemp(
                prefix="sharelift-bench-crc-", dir=shm if shm.is_dir() else self.scratch
            )
        )
        params = {
            "source": self.source("local", "B"),
            "root": str(self.data / "big"),
            "list": str(self.file_list("B")),
            "sink": str(sink),
        }
        try:
            res, rss = self.run_child("crc", params, row.label)
        finally:
            shutil.rmtree(sink, ignore_errors=True)
        self.fill(row, res, rss)
        row.extra = {k: res[k] for k in res if k.startswith(("crc_", "copy_"))}

    def cp_row(self, row: Row, dataset: str, fsync: bool) -> None:
        dst, clean = self.new_destination("local")
        src = str(self.data / SETS[dataset])
        target = str(Path(dst["path"]) / "copy")
        # With fsync: the durable floor, what sharelift's local destination also does
        # (every file fsynced before it is visible); coreutils `sync FILE...` fsyncs each.
        script = 'cp -r "$1" "$2"' + (' && find "$2" -type f -exec sync {} +' if fsync else "")
        try:
            row.seconds, row.rss_mb = self.run_cmd(["sh", "-c", script, "cp", src, target])
            row.files, row.bytes = self.totals_of(dataset)
        finally:
            clean()

    def rclone_row(self, row: Row, source: str, dataset: str, transfers: int) -> None:
        dst, clean = self.new_destination("local")
        if source == "local":
            remote = str(self.data / SETS[dataset])
        else:
            remote = f":smb:{self.smb.share}/{SETS[dataset]}"
        target = Path(dst["path"]) / "copy"
        argv = ["rclone", "copy", remote, str(target), "--transfers", str(transfers)]
        try:
            row.seconds, row.rss_mb = self.run_cmd(argv, env=self.rclone_env())
            row.files, row.bytes = datagen.totals(target)
        finally:
            clean()

    def oss2_row(self, row: Row, dataset: str, concurrency: int) -> None:
        dst, clean = self.new_destination("oss")
        params = {
            **{k: dst[k] for k in ("endpoint", "bucket", "access_key_id", "access_key_secret")},
            "region": dst["region"],
            "root": str(self.data / SETS[dataset]),
            "list": str(self.file_list(dataset)),
            "concurrency": concurrency,
        }
        try:
            self.fill(row, *self.run_child("oss2", params, row.label))
        finally:
            clean()

    def engine_row(
        self, row: Row, source: str, dest: str, dataset: str, workers: int, settings: dict[str, int]
    ) -> None:
        dst, clean = self.new_destination(dest)
        work = self.scratch / "engine-work" / f"c{self.case_no:03d}"
        params = {
            "job": f"bench-{source}-{dest}-{dataset.lower()}",
            "source": self.source(source, dataset),
            "destination": dst,
            "work_dir": str(work),
            "workers": workers,
            **settings,
        }
        try:
            res, rss = self.run_child("engine", params, row.label)
        finally:
            clean()
            shutil.rmtree(work, ignore_errors=True)
        self.fill(row, res, rss)
        row.extra.update({"phases": res["phases"], "subtasks": res["subtasks"], **settings})
        if res["failed"]:
            row.error = f"{res['failed']} files failed"

    # -- phases ----------------------------------------------------------------------

    def plan_row(self, row: Row) -> None:
        work = self.scratch / "plan"
        work.mkdir(exist_ok=True)
        params = {
            "files": self.cfg["plan_files"],
            "subtask_files": 1000,
            "max_groups": 1024,
            "work_dir": str(work / "work"),
            "null_dir": str(work / "nothing-written-here"),
            "state_url": self.args.plan_state_url or f"sqlite:///{work / 'state.db'}",
        }
        try:
            res, rss = self.run_child("plan", params, row.label)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.fill(row, res, rss)
        row.extra = {
            k: res[k]
            for k in ("phases", "phase_rss_mb", "seconds_per_million", "subtasks", "groups")
        }
        row.extra["state_db"] = "postgresql" if self.args.plan_state_url else "sqlite"
        if res["outcomes"] != res["files"]:
            row.error = f"{res['outcomes']} outcomes recorded for {res['files']} files"

    def phase_plan(self) -> None:
        self.log("phase: a very large job's plan (synthetic listing: scan, partition, bookkeeping)")
        files = self.cfg["plan_files"]
        name = f"{files // 1_000_000}M" if files % 1_000_000 == 0 else str(files)
        self.measure(Row("plan", "synthetic", "-", name), self.plan_row)

    def phase_scan(self) -> None:
        self.log("phase: scanning (sharelift scan into a manifest; find; rclone lsf -R)")
        for dataset in ("S", "M"):
            for source in SOURCES:
                self.measure(Row("scan", source, "-", dataset), self.scan_row, source, dataset)
            self.measure(Row("find", "local", "-", dataset), self.find_row, dataset)
            self.measure(Row("lsf", "smb", "-", dataset), self.lsf_row, dataset)

    def phase_read(self) -> None:
        self.log("phase: raw read speed (the backend's own source class, 1 and 2 processes)")
        for dataset in ("S", "B"):
            for source in SOURCES:
                for n in (1, 2):
                    row = Row("read", source, "-", dataset, f"{n}p")
                    self.measure(row, self.read_row, source, dataset, n)

    def phase_crc(self) -> None:
        self.log("phase: CRC-64 cost")
        self.measure(Row("crc", "local", "local", "B", "copy with/without"), self.crc_row)

    def rclone_env(self) -> dict[str, str]:
        from tests.servers import prerequisites

        prerequisites.require("rclone")  # missing: an error naming the Debian package
        env = dict(os.environ)
        obscured = subprocess.run(
            ["rclone", "obscure", "-"],
            input=self.smb.password.reveal(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        conf = self.scratch / "rclone.conf"
        conf.touch()
        env.update(
            {
                "RCLONE_CONFIG": str(conf),
                "RCLONE_SMB_HOST": self.smb.host,
                "RCLONE_SMB_PORT": str(self.smb.port),
                "RCLONE_SMB_USER": self.smb.username,
                "RCLONE_SMB_PASS": obscured,
            }
        )
        return env

    def phase_references(self) -> None:
        self.log("phase: references (cp -r, rclone copy, plain oss2 uploader)")
        for dataset in ("S", "B"):
            self.measure(Row("cp", "local", "local", dataset, "-r"), self.cp_row, dataset, False)
            row = Row("cp", "local", "local", dataset, "-r + fsync")
            self.measure(row, self.cp_row, dataset, True)
            for source in ("local", "smb"):
                for transfers in self.cfg["transfers"]:
                    row = Row("rclone", source, "local", dataset, f"t={transfers}")
                    self.measure(row, self.rclone_row, source, dataset, transfers)
            for conc in self.cfg["concurrency"]:
                row = Row("oss2", "local", "oss", dataset, f"c={conc}")
                self.measure(row, self.oss2_row, dataset, conc)

    def fit_settings(self, subtasks: int) -> dict[str, int]:
        """Job settings that cut set S into ``subtasks`` subtasks (Airflow overhead fit)."""
        return {
            "subtask_files": max(1, -(-self.cfg["s_files"] // subtasks)),
            "subtask_bytes": 1024**3,
        }

    def has_row(self, label: str) -> bool:
        return any(r.label == label and not r.error for r in self.rows)

    def totals_of(self, dataset: str) -> tuple[int, int]:
        if dataset not in self.totals:
            self.totals[dataset] = datagen.totals(self.data / SETS[dataset])
        return self.totals[dataset]

    def job_settings(self, dataset: str) -> dict[str, int]:
        """Subtasks for the engine and the DAG: the S set in 10, the B set one file each."""
        if dataset == "S":
            return self.fit_settings(10)
        return {"subtask_files": 1000, "subtask_bytes": 128 * MIB}

    def phase_engine(self) -> None:
        self.log("phase: sharelift copy engine alone (run_job, no Airflow)")
        for dataset in ("S", "B"):
            settings = self.job_settings(dataset)
            for source in SOURCES:
                for dest in ("local", "oss"):
                    for workers in self.cfg["workers"]:
                        row = Row("engine", source, dest, dataset, f"w={workers}")
                        self.measure(row, self.engine_row, source, dest, dataset, workers, settings)
        if self.mode == "full":
            # The default subtask size (1 GiB) puts the whole big set in one subtask.
            default = {"subtask_files": 1000, "subtask_bytes": 1024**3}
            row = Row("engine", "nfs", "local", "B", "w=2 default-1GiB")
            self.measure(row, self.engine_row, "nfs", "local", "B", 2, default)

    # -- Airflow ------------------------------------------------------------------------

    def start_airflow(self) -> None:
        from sharelift.local.airflow import AirflowServer

        home = self.scratch / "af"
        (home / "jobs").mkdir(parents=True)
        self.airflow = AirflowServer(
            home,
            REPO / "dags",
            REPO / "plugins",
            extra_env={
                "SHARELIFT_WORK_DIR": str(home / "work"),
                "SHARELIFT_JOBS_DIR": str(home / "jobs"),
            },
        )
        t = time.perf_counter()
        self.airflow.start()
        setup = [sys.executable, "-m", "sharelift.cli", "airflow-setup"]
        if self.args.pool_slots:
            setup += ["--pool-slots", str(self.args.pool_slots)]
        subprocess.run(
            setup,
            env=self.airflow.env,
            check=True,
            capture_output=True,
            timeout=180,
        )
        self.airflow.wait_for_dag(DAG_ID, timeout=240)
        self.airflow.unpause(DAG_ID)
        af = self.airflow
        af.set_connection("bench_local", "sharelift_local", extra={"path": str(self.data)})
        af.set_connection(
            "bench_nfs",
            "sharelift_nfs",
            host=self.nfs.host,
            port=self.nfs.nfs_port,
            schema=self.nfs.export_path,
            extra={"mount_port": self.nfs.mount_port},
        )
        af.set_connection(
            "bench_smb",
            "sharelift_smb",
            host=self.smb.host,
            port=self.smb.port,
            schema=self.smb.share,
            login=self.smb.username,
            password=self.smb.password.reveal(),
        )
        self.log(f"Airflow healthy and DAG ready in {time.perf_counter() - t:.0f} s")

    def airflow_row(
        self, row: Row, source: str, dest: str, dataset: str, settings: dict[str, int]
    ) -> None:
        from sharelift.engine.report import report_folder
        from sharelift.local.airflow import parse_time

        af = self.airflow
        dst, clean = self.new_destination(dest)
        if dest == "local":
            af.set_connection("bench_dst", "sharelift_local_bucket", extra={"path": dst["path"]})
        else:
            af.set_connection(
                "bench_dst",
                "oss",
                schema=dst["bucket"],
                extra={
                    "auth_type": "AK",
                    "access_key_id": dst["access_key_id"],
                    "access_key_secret": dst["access_key_secret"],
                    "endpoint": dst["endpoint"],
                    "region": dst["region"],
                },
            )
        job = f"af-{source}-{dest}-{dataset.lower()}-{self.case_no}"
        conf = {
            "job_name": job,
            "source_conn_id": f"bench_{source}",
            "source_path": SETS[dataset],
            "destination_conn_id": "bench_dst",
            "destination_prefix": "",
            "subtask_file_count": settings["subtask_files"],
            "subtask_file_size_mb": settings["subtask_bytes"] // MIB,
        }
        peak = {"pss": 0}
        stop = threading.Event()

        def sample() -> None:
            # A PSS sweep of the Airflow tree (smaps_rollup of each of its ~30 processes)
            # costs the kernel real CPU: once a second, it took a share of the machine from
            # the run it measured (bench/README.md). So only every AIRFLOW_PSS_EVERY seconds.
            while not stop.is_set():
                with contextlib.suppress(Exception):
                    peak["pss"] = max(peak["pss"], af.memory()["pss"])
                stop.wait(AIRFLOW_PSS_EVERY)

        sampler = threading.Thread(target=sample, daemon=True)
        try:
            sampler.start()
            t0 = time.time()
            run_id = af.trigger(DAG_ID, conf)
            # The time is the run's end_date: polling faster would only add REST calls that
            # compete with the run for the CPU.
            state = af.wait_for_run(DAG_ID, run_id, timeout=self.args.case_timeout, poll=1.0)
            stop.set()
            sampler.join()
            run = af.dag_run(DAG_ID, run_id)
            end = parse_time(run["end_date"]).timestamp()  # type: ignore[union-attr]
            tis = af.task_instances(DAG_ID, run_id)
            summary = self.read_summary(
                dest, dst, report_folder(job, run_id) + f"{job}_summary.json"
            )
        finally:
            stop.set()
            clean()
        row.seconds = end - t0
        row.rss_mb = peak["pss"] / MIB
        row.files = int(summary.get("files_copied", 0))
        row.bytes = int(summary.get("bytes_copied", 0))
        copies = [ti for ti in tis if ti["task_id"] == "copy"]
        spans = [
            (parse_time(ti["start_date"]).timestamp(), parse_time(ti["end_date"]).timestamp())  # type: ignore[union-attr]
            for ti in copies
            if ti.get("start_date") and ti.get("end_date")
        ]
        by_task: dict[str, float] = {}
        for ti in tis:
            if ti.get("start_date") and ti.get("end_date") and ti["task_id"] != "copy":
                by_task[ti["task_id"]] = round(
                    parse_time(ti["end_date"]).timestamp()  # type: ignore[union-attr]
                    - parse_time(ti["start_date"]).timestamp(),  # type: ignore[union-attr]
                    2,
                )
        row.extra = {
            # The subtasks the run cut (its summary says); small ones share copy tasks.
            "subtasks": int(summary.get("subtasks") or len(copies)),
            "copy_tasks": len(copies),
            "copy_span": (max(e for _, e in spans) - min(s for s, _ in spans)) if spans else None,
            "copy_task_mean": (sum(e - s for s, e in spans) / len(spans)) if spans else None,
            "task_seconds": by_task,
            **settings,
        }
        if state != "success":
            row.error = f"DAG run {state}"
        elif summary.get("files_failed"):
            row.error = f"{summary['files_failed']} files failed"

    def read_summary(self, dest: str, dst: dict[str, Any], key: str) -> dict[str, Any]:
        if dest == "local":
            path = Path(dst["path"]) / key
            return json.loads(path.read_text()) if path.exists() else {}
        bucket = self.oss.bucket(dst["bucket"])
        try:
            return json.loads(bucket.get_object(key).read())
        except Exception:  # noqa: BLE001 - missing report: the row says so
            return {}

    def phase_airflow(self) -> None:
        fit_labels = [
            Row("airflow", "nfs", "oss", "S", f"fit n={n}").label for n in self.cfg["fit_subtasks"]
        ]
        matrix = [
            (source, dest, dataset)
            for dataset in ("S", "B")
            for source in SOURCES
            for dest in ("local", "oss")
        ]
        matrix_rows = [
            Row("airflow", s, d, ds, "") for s, d, ds in matrix if self.cfg["airflow_matrix"]
        ]
        if not any(self.wanted(lbl) for lbl in fit_labels) and not any(
            self.wanted(r.label) for r in matrix_rows
        ):
            return
        self.log("phase: the whole DAG through a running Airflow (starting Airflow)")
        fits = {n: self.fit_settings(n) for n in self.cfg["fit_subtasks"]}
        for n, settings in fits.items():
            # The engine alone with the same subtasks: the baseline of the fit.
            if settings == self.job_settings("S") and self.has_row("engine nfs->oss S w=2"):
                continue  # the engine matrix already ran exactly this job
            row = Row("engine", "nfs", "oss", "S", f"fit n={n}")
            self.measure(row, self.engine_row, "nfs", "oss", "S", 2, settings)
        try:
            self.start_airflow()
        except Exception as exc:  # noqa: BLE001
            self.add(Row("airflow", "-", "-", "-", "start", error=f"{type(exc).__name__}: {exc}"))
            return
        try:
            if any(self.wanted(lbl) for lbl in fit_labels):
                # The first run after Airflow starts pays one-time costs (bytecode of the DAG
                # file and plugin, first imports into the page cache: its first task took
                # 3.4 s instead of 0.6 s). The fit assumes every run pays the same fixed
                # part, so a warm-up run, listed on its own, goes first.
                n = min(fits)
                row = Row("airflow", "nfs", "oss", "S", f"fit warm-up n={n}")
                self.measure(row, self.airflow_row, "nfs", "oss", "S", fits[n])
            for n, settings in fits.items():
                row = Row("airflow", "nfs", "oss", "S", f"fit n={n}")
                self.measure(row, self.airflow_row, "nfs", "oss", "S", settings)
            for row in matrix_rows:
                route = (row.source, row.dest, row.dataset)
                if route == ("nfs", "oss", "S") and self.job_settings("S") in fits.values():
                    continue  # a fit run above was exactly this job
                settings = self.job_settings(row.dataset)
                self.measure(row, self.airflow_row, row.source, row.dest, row.dataset, settings)
        finally:
            t = time.perf_counter()
            self.airflow.stop()
            self.airflow = None
            self.log(f"Airflow stopped in {time.perf_counter() - t:.0f} s")

    # -- the whole run -------------------------------------------------------------------

    def run(self) -> int:
        self.log(
            f"sharelift benchmark ({self.mode}); scratch {self.scratch}; data {self.data}; "
            f"sets S={self.spec.s_files} B={self.spec.b_files}x{self.spec.b_mib} MiB "
            f"M={self.spec.m_files}"
        )
        self.phase_plan()
        if self.only is not None and self.only.pattern.lstrip("^").startswith("plan"):
            return 0  # the plan case needs no data set and no server
        self.gen_seconds = datagen.generate(self.data, self.spec, log=self.log)
        for ds in ("S", "B", "M"):
            self.totals[ds] = datagen.totals(self.data / SETS[ds])
        self.start_servers()
        self.phase_scan()
        self.phase_read()
        self.phase_crc()
        self.phase_references()
        self.phase_engine()
        self.phase_airflow()
        return 0

    def finish(self) -> Path | None:
        if not self.rows:
            return None
        self.info = machine_info()
        tables = report.Report(self)
        text = tables.markdown()
        print()
        print(tables.console())
        if self.args.no_write:
            return None
        out_dir = BENCH / "results"
        out_dir.mkdir(exist_ok=True)
        host = socket.gethostname() or "machine"
        host = re.sub(r"[^A-Za-z0-9_.-]+", "-", host) or "machine"
        suffix = "" if self.mode == "full" and not self.only else f"-{self.mode}"
        if self.only:
            suffix += "-partial"
        path = out_dir / f"{datetime.now():%Y-%m-%d}-{host}{suffix}.md"
        path.write_text(text)
        return path

    def cleanup(self) -> None:
        self.stop_servers()
        if self.args.keep:
            self.log(f"kept {self.scratch}" + (f" and {self.data}" if self.args.data else ""))
            return
        t = time.perf_counter()
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.log(f"removed {self.scratch} in {time.perf_counter() - t:.0f} s")


def code_fingerprint() -> str:
    """What is measured: the commit, and a hash of the code (include/, dags/, plugins/ as
    committed, plus any uncommitted change to them). Commits elsewhere do not change it."""
    import hashlib

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    tree = git("ls-tree", "HEAD", "include", "dags", "plugins")
    diff = git("diff", "HEAD", "--", "include", "dags", "plugins")
    code = hashlib.sha256((tree + "\0" + diff).encode()).hexdigest()[:8]
    return f"{head} (code {code}{', uncommitted changes' if diff else ''})"


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def datagen_tail(path: Path, lines: int = 25) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(True)[-lines:])
    except OSError:
        return ""


def machine_info() -> dict[str, str]:
    import importlib.metadata as md

    def version(dist: str) -> str:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return "-"

    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "-"

    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = "-"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "host": socket.gethostname() or "machine",
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "os": first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "sharelift": f"{version('sharelift')}, git {code_fingerprint()}",
        "apache-airflow": version("apache-airflow"),
        "rclone": first_line(["rclone", "version"]),
        "oss2": version("oss2"),
        "smbprotocol": version("smbprotocol"),
        "libnfs (python)": version("libnfs"),
        "fastcrc": version("fastcrc"),
        "nfs-ganesha": first_line(["sh", "-c", "dpkg-query -W -f '${Version}' nfs-ganesha"]),
        "samba": first_line(["sh", "-c", "dpkg-query -W -f '${Version}' samba"]),
        "cp": first_line(["cp", "--version"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller sets, fewer variants (~5 min)"
    )
    parser.add_argument(
        "--m-files", type=int, help="files in the scan set M (default 1,000,000; quick 100,000)"
    )
    parser.add_argument(
        "--s-files", type=int, help="files in the small set S (default 10,000; quick 2,000)"
    )
    parser.add_argument(
        "--b-files", type=int, help="128 MiB files in the big set B (default 8; quick 2)"
    )
    parser.add_argument(
        "--workers", help="engine worker counts, e.g. 2,4 (default: full 2,4; quick 2)"
    )
    parser.add_argument("--only", help="run only the cases whose label matches this regex")
    parser.add_argument(
        "--plan-files", type=int, help="entries of the synthetic plan case (default 10,000,000)"
    )
    parser.add_argument(
        "--plan-state-url", help="state database of the plan case (default: SQLite in scratch)"
    )
    parser.add_argument("--data", help="generate/reuse the data sets in this folder (kept)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--profile", help="record every child case with py-spy into this folder")
    parser.add_argument(
        "--pool-slots",
        type=int,
        help="slots of the copy pool in Airflow (default: what `sharelift airflow-setup` sets: 2 per CPU, 4-20)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    parser.add_argument("--case-timeout", type=float, default=1800, help="seconds per case")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return cases.child_main()

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    bench = Bench(args)
    status = 0
    try:
        bench.run()
    except KeyboardInterrupt:
        bench.log("interrupted: writing what was measured, stopping servers")
        status = 130
    except Exception as exc:  # noqa: BLE001 - still report what was measured, and clean up
        bench.log(f"benchmark stopped by {type(exc).__name__}: {exc}")
        status = 1
    finally:
        try:
            path = bench.finish()
            if path:
                bench.log(f"results written to {path.relative_to(REPO)}")
        finally:
            bench.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
