"""Through ``dag.test()``: a prefix or source sub-folder that would leave its folder is refused,
by the trigger form and again when the run checks its addresses; nothing outside changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.folder_snapshot import snapshot


def set_connection(conn_id: str, **fields: object) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)


@pytest.fixture
def area(tmp_path: Path) -> Path:
    """``area/src`` (the source), ``area/bucket`` (the destination) and ``area/outside``,
    a sibling with files of its own: '..' from either folder lands in ``area``."""
    area = tmp_path / "area"
    for rel, data in {"src/a.txt": b"a", "src/d/b.txt": b"b", "outside/keep.txt": b"k"}.items():
        (area / rel).parent.mkdir(parents=True, exist_ok=True)
        (area / rel).write_bytes(data)
    (area / "bucket").mkdir()
    set_connection("contain_src", conn_type="sharelift_local", extra={"path": str(area / "src")})
    set_connection(
        "contain_dst", conn_type="sharelift_local_bucket", extra={"path": str(area / "bucket")}
    )
    return area


def run(dagbag, **conf: object):  # type: ignore[no-untyped-def]
    params: dict[str, object] = {
        "job_name": "contain-dag",
        "source_conn_id": "contain_src",
        "destination_conn_id": "contain_dst",
        "destination_prefix": "to/",
    }
    params.update(conf)
    return dagbag.get_dag("sharelift_migrate").test(run_conf=params)


def create_failed_message(dr) -> str:  # type: ignore[no-untyped-def]
    from sharelift.airflow.tasks import state_url
    from sharelift.engine.state import StateStore

    state = StateStore(state_url())
    try:
        run_row = state.get_run("contain-dag", dr.run_id)
    finally:
        state.close()
    assert run_row is not None and run_row["state"] == "Create Failed"
    return str(run_row["message"])


def outside_the_bucket(area: Path) -> dict[str, bytes | str]:
    return {k: v for k, v in snapshot(area).items() if not k.startswith("bucket")}


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("destination_prefix", "../"),
        ("destination_prefix", "to/../../"),
        ("source_path", ".."),
        ("source_path", "../outside"),
    ],
)
def test_the_trigger_form_refuses_a_path_that_leaves_its_folder(
    dagbag, area: Path, param: str, value: str
) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.definitions.param import ParamValidationError

    before = snapshot(area)
    with pytest.raises(ParamValidationError, match=param):
        run(dagbag, **{param: value})
    assert snapshot(area) == before


def test_a_connection_prefix_that_leaves_the_bucket_fails_the_run_writing_nothing_outside(
    dagbag, area: Path
) -> None:  # type: ignore[no-untyped-def]
    set_connection(
        "contain_dst",
        conn_type="sharelift_local_bucket",
        extra={"path": str(area / "bucket"), "prefix": "../"},
    )
    before = outside_the_bucket(area)
    dr = run(dagbag, destination_prefix=None)
    assert dr.state == "failed"
    message = create_failed_message(dr)
    assert "connection 'contain_dst' extra 'prefix'" in message
    assert "'..' as a folder name" in message
    assert outside_the_bucket(area) == before


def test_a_local_connection_folder_with_dot_dot_fails_the_run_reading_nothing(
    dagbag, area: Path
) -> None:  # type: ignore[no-untyped-def]
    set_connection(
        "contain_src",
        conn_type="sharelift_local",
        extra={"path": str(area / "src" / ".." / "outside")},
    )
    dr = run(dagbag)
    assert dr.state == "failed"
    message = create_failed_message(dr)
    assert "connection 'contain_src' extra 'path'" in message
    assert "'..' as a folder name" in message
    assert not (area / "bucket" / "to").exists()
