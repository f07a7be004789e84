"""``sharelift demo`` stopped by a signal leaves no process behind: not the embedded OSS
server, not one process of the Airflow tree, whenever the signal comes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.e2e


def _processes_of(folder: Path) -> list[psutil.Process]:
    """Processes whose command line, working folder or environment names ``folder``."""
    found = []
    me = os.getpid()
    for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
        if p.pid == me:
            continue
        try:
            text = " ".join(p.info["cmdline"] or []) + " " + (p.info["cwd"] or "")
            if str(folder) in text or any(str(folder) in v for v in p.environ().values()):
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def _start_demo(work: Path, ignore_sigint: bool) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SHARELIFT"))}
    env["PYTHONUNBUFFERED"] = "1"

    def preexec() -> None:
        if ignore_sigint:  # what a non-interactive shell does to a background job
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(
        [sys.executable, "-m", "sharelift.cli", "demo", "--workdir", str(work), "--files", "10"]
        + ["--keep-running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=preexec,
    )


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not printed; output:\n{''.join(seen)}")


@pytest.mark.parametrize(
    ("signum", "ignore_sigint", "when"),
    [
        (signal.SIGTERM, False, "Airflow UI at"),
        (signal.SIGINT, True, "starting Airflow"),
    ],
    ids=["sigterm-after-start", "sigint-from-a-script-during-start"],
)
def test_a_signal_stops_everything_the_demo_started(
    tmp_path: Path, signum: int, ignore_sigint: bool, when: str
) -> None:
    work = tmp_path / "demo"
    proc = _start_demo(work, ignore_sigint)
    try:
        _wait_for_line(proc, when, timeout=300)
        time.sleep(2)
        assert _processes_of(work), "the demo's servers should be running"
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=120)
        assert "stopping everything" in out
        assert proc.returncode == 128 + signum
        deadline = time.monotonic() + 15
        while _processes_of(work) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert [p.info["cmdline"] for p in _processes_of(work)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in _processes_of(work):
            p.kill()
