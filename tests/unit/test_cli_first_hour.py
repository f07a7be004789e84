"""What a newcomer meets on the command line: one configuration rule, unknown names refused,
nothing created in the home folder by a mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sharelift.cli import main as cli
from sharelift.config import resolve
from sharelift.engine.state import StateStore


def _env_without_airflow(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SHARELIFT"))}
    env["HOME"] = str(home)
    return env


def _sharelift(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sharelift.cli", *args],
        env=_env_without_airflow(home),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_state_database_follows_one_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHARELIFT_STATE_URL", raising=False)
    monkeypatch.delenv("SHARELIFT_WORK_DIR", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "af"))
    lookup = {"sharelift_state": ("postgres://u:pw@127.0.0.1:5/db", "127.0.0.1")}.get
    assert (
        resolve(connection_lookup=lookup).state_url == "postgresql+psycopg2://u:pw@127.0.0.1:5/db"
    )
    assert resolve().state_url == f"sqlite:///{tmp_path / 'af' / 'sharelift' / 'state.db'}"
    monkeypatch.setenv("SHARELIFT_WORK_DIR", str(tmp_path / "w"))
    assert resolve().state_url == f"sqlite:///{tmp_path / 'w' / 'state.db'}"
    monkeypatch.setenv("SHARELIFT_STATE_URL", "sqlite:///env.db")
    assert resolve(connection_lookup=lookup).state_url == "sqlite:///env.db"
    assert resolve("sqlite:///arg.db", lookup).state_url == "sqlite:///arg.db"


def test_config_shows_where_it_looks_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["config", "--state-url", "postgresql://u:secret-pw@127.0.0.1:5/db"]) == 0
    out = capsys.readouterr().out
    assert "127.0.0.1:5/db" in out and "--state-url" in out and "secret-pw" not in out


def test_commands_refuse_an_unknown_job_naming_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    store.upsert_run("known-job", "manual__1", migration_type="full", state="Completed")
    store.close()
    for args in (
        ["flow-control", "set", "no-such-job", "08:00-18:00=10", "--state-url", url],
        ["flow-control", "show", "no-such-job", "--state-url", url],
        ["runs", "no-such-job", "--state-url", url],
        ["retry", "no-such-job", "manual__1", "--state-url", url, "--print"],
    ):
        assert cli(args) == 2, args
        err = capsys.readouterr().err
        assert "no job named 'no-such-job'" in err and "known-job" in err, args
    from sharelift.engine.flow_control import get_flow_control

    store = StateStore(url)
    assert get_flow_control(store, "no-such-job") is None
    store.close()


def test_retry_refuses_an_unknown_run_naming_the_latest_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(url).upsert_run("known-job", "manual__1", migration_type="full", state="Failed")
    assert cli(["retry", "known-job", "manual__9", "--state-url", url, "--print"]) == 2
    assert "no run 'manual__9'" in capsys.readouterr().err


def test_a_limit_can_be_set_ahead_of_a_jobs_first_run_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    assert (
        cli(["flow-control", "set", "new-job", "08:00-18:00=10", "--new-job", "--state-url", url])
        == 0
    )
    assert "new-job" in capsys.readouterr().out


def test_runs_are_numbered_within_their_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    for n in (1, 2):
        store.upsert_run("demo-share", f"manual__{n}", migration_type="full", state="Completed")
    store.close()
    assert cli(["runs", "demo-share", "--state-url", url]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if "manual__" in line]
    assert [(r[1], r[2]) for r in rows] == [("1", "manual__1"), ("2", "manual__2")]


def test_no_command_creates_files_in_the_home_folder_by_mistake(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for args in (
        ["runs"],
        ["runs", "no-such-job"],
        ["flow-control", "set", "no-such-job", "08:00-18:00=10"],
        ["flow-control", "show", "no-such-job"],
        ["retry", "no-such-job", "manual__1"],
        ["config"],
        ["--help"],
    ):
        done = _sharelift(home, *args)
        assert done.returncode in (0, 2), (args, done.stderr)
        if done.returncode == 2:
            assert "sharelift" in done.stderr and "Traceback" not in done.stderr, args
    assert list(home.iterdir()) == []


def test_retry_without_an_airflow_home_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = _sharelift(home, "retry", "some-job", "manual__1")
    assert done.returncode == 2
    assert "no Airflow configuration" in done.stderr and "AIRFLOW_HOME" in done.stderr


def test_help_lists_only_commands_that_exist(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    text = _sharelift(home, "--help").stdout
    commands = text.split("{", 1)[1].split("}", 1)[0].split(",")
    assert "testbed" not in commands
    for command in commands:
        assert _sharelift(home, command, "--help").returncode == 0, command
