"""``sharelift cleanup JOB --older-than AGE``: a job's orphaned uploads and checkpoints go,
newer ones stay, a dry run only lists. Against a real ``sharelift ossd``, through the
destination recorded with the job's latest run and its Airflow connection."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import oss2
import pytest

from sharelift import cleanup_cli
from sharelift.cli import main
from sharelift.engine.state import StateStore
from sharelift.storage.checkpoint import CheckpointFile, UploadHeader

JOB = "leftover_job"
DAY = 86400


@pytest.fixture
def setup(oss_server, unique_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A bucket, the job's connection, a recorded run that used prefix ``pre/``, and a clock
    that can be set: ``old`` and ``new`` uploads started 2.5 s apart, the clock then put a
    day later than the new one less 1.5 s, so that with ``--older-than 24h`` only ``old``
    is old enough."""
    bucket_name = f"cl-{unique_name}"
    oss_server.create_bucket(bucket_name)
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLEANUP_DST", json.dumps(oss_server.connection_fields(bucket_name))
    )
    monkeypatch.setenv("SHARELIFT_WORK_DIR", str(tmp_path / "work"))
    state_url = f"sqlite:///{tmp_path}/state.db"
    store = StateStore(state_url)
    spec = {
        "dag_id": "sharelift_migrate",
        "params": {"destination_conn_id": "cleanup_dst", "destination_prefix": "pre/"},
        "job": {"name": JOB, "source": "src", "destination": "cleanup_dst"},
    }
    store.upsert_run(JOB, "r1", state="Failed", spec=json.dumps(spec))
    store.close()
    bucket = oss_server.bucket(bucket_name, "v4")
    old = bucket.init_multipart_upload("pre/old.bin").upload_id
    other = bucket.init_multipart_upload("elsewhere/old.bin").upload_id  # not the job's prefix
    time.sleep(2.5)
    new = bucket.init_multipart_upload("pre/new.bin").upload_id
    now = time.time() + DAY - 1.5
    monkeypatch.setattr(cleanup_cli, "now", lambda: now)
    checkpoints = tmp_path / "work" / "checkpoints" / JOB
    return {
        "bucket": bucket,
        "state_url": state_url,
        "ids": {"old": old, "new": new, "other": other},
        "checkpoints": checkpoints,
        "now": now,
    }


def uploads(bucket: Any) -> dict[str, str]:
    return {u.key: u.upload_id for u in oss2.MultipartUploadIterator(bucket)}


def checkpoint(folder: Path, name: str, upload_id: str, written: float) -> Path:
    cp = CheckpointFile(str(folder / name))
    cp.start(UploadHeader("pre/x.bin", 1, None, 102400, upload_id))
    os.utime(cp.path, (written, written))
    return Path(cp.path)


def cleanup(setup: dict[str, Any], *args: str) -> int:
    return main(["cleanup", JOB, "--state-url", setup["state_url"], *args])


def test_an_orphaned_upload_older_than_the_age_is_removed_and_a_newer_one_kept(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cleanup(setup, "--older-than", "24h") == 0
    out = capsys.readouterr().out
    ids = setup["ids"]
    assert uploads(setup["bucket"]) == {
        "pre/new.bin": ids["new"],
        "elsewhere/old.bin": ids["other"],
    }
    assert f"removed incomplete upload oss://{setup['bucket'].bucket_name}/pre/old.bin" in out
    assert ids["old"] in out and "pre/new.bin" not in out
    assert "1 leftover(s) older than 24h removed" in out


def test_old_checkpoints_are_removed_and_recent_ones_kept(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, now = setup["checkpoints"], setup["now"]
    stale = checkpoint(folder, "stale.json", "gone-upload", now - DAY - 60)
    fresh = checkpoint(folder, "fresh.json", "another-upload", now - 60)
    assert cleanup(setup, "--older-than", "1d") == 0
    out = capsys.readouterr().out
    assert not stale.exists() and fresh.exists()
    assert f"removed checkpoint {stale}" in out


def test_an_old_upload_whose_checkpoint_is_still_being_written_is_kept(
    setup: dict[str, Any],
) -> None:
    checkpoint(setup["checkpoints"], "active.json", setup["ids"]["old"], setup["now"] - 60)
    assert cleanup(setup, "--older-than", "24h") == 0
    assert "pre/old.bin" in uploads(setup["bucket"])


def test_a_dry_run_lists_and_removes_nothing(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    stale = checkpoint(setup["checkpoints"], "stale.json", "gone", setup["now"] - 2 * DAY)
    before = uploads(setup["bucket"])
    assert cleanup(setup, "--older-than", "24h", "--dry-run") == 0
    out = capsys.readouterr().out
    assert uploads(setup["bucket"]) == before and stale.exists()
    assert "would remove incomplete upload" in out and "pre/old.bin" in out
    assert f"would remove checkpoint {stale}" in out
    assert "2 leftover(s) older than 24h to remove (dry run: nothing removed)" in out


def test_the_destination_can_be_named_instead_of_taken_from_the_latest_run(
    setup: dict[str, Any],
) -> None:
    assert (
        cleanup(
            setup,
            "--older-than",
            "24h",
            "--destination-conn-id",
            "cleanup_dst",
            "--prefix",
            "elsewhere/",
        )
        == 0
    )
    assert "elsewhere/old.bin" not in uploads(setup["bucket"])
    assert "pre/old.bin" in uploads(setup["bucket"])


def test_an_unknown_job_or_connection_or_age_is_refused_and_changes_nothing(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    before = uploads(setup["bucket"])
    url = setup["state_url"]
    assert main(["cleanup", "nobody", "--older-than", "1h", "--state-url", url]) == 2
    assert "no job named 'nobody'" in capsys.readouterr().err
    assert cleanup(setup, "--older-than", "1h", "--destination-conn-id", "missing_conn") == 2
    assert "no Airflow connection named 'missing_conn'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cleanup(setup, "--older-than", "yesterday")
    assert "not an age" in capsys.readouterr().err
    assert uploads(setup["bucket"]) == before
