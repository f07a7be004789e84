"""How the native compose runner reads docker-compose.yaml (no process is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deployment.compose import ComposeError, NativeCompose, duration, interpolate

REPO = Path(__file__).resolve().parents[2]
SECRETS = {
    "POSTGRES_PASSWORD": "pw",
    "AIRFLOW_FERNET_KEY": "fernet",
    "AIRFLOW_JWT_SECRET": "jwt",
    "AIRFLOW_API_SECRET_KEY": "api",
    "OSSD_ACCESS_KEY_ID": "id",
    "OSSD_ACCESS_KEY_SECRET": "secret",
}


def test_interpolation_takes_defaults_escapes_and_names_a_missing_required_variable() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET}-${EMPTY:-d}-${EMPTY-d}-${NONE:-d}-$$HOME", env) == "x-d--d-$HOME"
    with pytest.raises(ComposeError, match="POSTGRES_PASSWORD is required: set it"):
        interpolate({"a": ["${POSTGRES_PASSWORD:?set it}"]}, env)


def test_durations_read_like_compose() -> None:
    assert duration("1m30s", 0) == 90 and duration("500ms", 0) == 0.5 and duration(None, 7) == 7
    with pytest.raises(ComposeError):
        duration("ten seconds", 0)


def test_the_compose_file_refuses_to_start_without_its_secrets(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="AIRFLOW_FERNET_KEY"):
        NativeCompose(REPO / "docker-compose.yaml", tmp_path, {"POSTGRES_PASSWORD": "pw"})


def test_service_names_and_own_ports_become_loopback_ports_and_paths_the_replica_root(
    tmp_path: Path,
) -> None:
    compose = NativeCompose(REPO / "docker-compose.yaml", tmp_path, SECRETS, scale={"worker": 2})
    assert "sample-nfs" not in compose.services  # demo profile only
    compose._create_replicas()
    w1, w2 = compose.replicas["worker"]
    env = compose._replica_env(w1)
    redis_port = compose.port("redis", 6379)
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://127.0.0.1:{redis_port}/0"
    api = compose.port("api-server", 8080)
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{api}/execution/"
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == str(w1.ports[8793])
    assert w1.ports[8793] != w2.ports[8793]
    assert env["AIRFLOW_HOME"] == f"{w1.root}/opt/airflow"
    assert env["HOME"] != compose._replica_env(w2)["HOME"]
    assert env["HOSTNAME"] == "worker-1"
    assert compose._argv(w1)[-3:] == ["--celery-hostname", "celery@worker-1", "--skip-serve-logs"]


def test_named_volumes_are_shared_unless_made_private(tmp_path: Path) -> None:
    shared = NativeCompose(
        REPO / "docker-compose.yaml", tmp_path / "a", SECRETS, scale={"worker": 2}
    )
    private = NativeCompose(
        REPO / "docker-compose.yaml",
        tmp_path / "b",
        SECRETS,
        scale={"worker": 2},
        private_volumes=["sharelift-work"],
    )
    for compose, same in ((shared, True), (private, False)):
        compose._create_replicas()
        w1, w2 = compose.replicas["worker"]
        for r in (w1, w2):
            compose._prepare_root(r)
        work = "/opt/sharelift-work"
        assert (
            compose.path("worker", work, 1).resolve() == compose.path("worker", work, 2).resolve()
        ) is same
