"""The ``sharelift ossd`` command: start-up line, secret handling, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import oss2
import pytest

from sharelift.local.ossd import OssServer
from sharelift.local.ports import wait_for_port
from sharelift.ossd import SECRET_ENV
from tests.servers import TestbedError

pytestmark = pytest.mark.servers


def test_port_zero_prints_the_listening_line_and_sigint_stops(tmp_path: Path) -> None:
    env = {**os.environ, SECRET_ENV: "s3cret-value"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sharelift.cli",
            "ossd",
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            "0",
            "--access-key-id",
            "ak",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("ossd listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        assert wait_for_port(port, timeout=5)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "s3cret-value" not in err


def test_secret_is_not_on_the_command_line_nor_in_the_log(tmp_path: Path) -> None:
    server = OssServer(tmp_path / "d", verbose=True)
    with server:
        secret = server.access_key_secret.reveal()
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert secret.encode() not in cmdline
        server.create_bucket("logged")
        bad = oss2.Bucket(oss2.Auth(server.access_key_id, "wrong"), server.endpoint, "logged")
        with pytest.raises(oss2.exceptions.ServerError):
            bad.get_object("x")
    log = server.log_path.read_text()
    assert "PUT /logged/" in log  # --verbose logs requests
    assert secret not in log
    assert "***" in repr(server.access_key_secret)


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    server = OssServer(tmp_path / "d").start()
    assert server.running
    assert server.stop() == 0


def test_second_server_on_one_data_dir_fails_with_the_log_tail(ossd: OssServer) -> None:
    with pytest.raises(TestbedError, match="in use by another ossd"):
        OssServer(ossd.data_dir).start()


def test_missing_secret_is_an_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sharelift.cli",
            "ossd",
            "--data-dir",
            str(tmp_path / "d"),
            "--access-key-id",
            "ak",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 2
    assert SECRET_ENV in proc.stderr


def test_destination_address_points_at_the_server(ossd: OssServer) -> None:
    address = ossd.destination_address(bucket="some-bucket", prefix="in/")
    assert address.kind == "oss"
    assert address.endpoint == ossd.endpoint
    assert address.region == ossd.region
    assert address.access_key_secret == ossd.access_key_secret
    assert address.signature_version == "v4"
    assert ossd.access_key_secret.reveal() not in repr(address)
