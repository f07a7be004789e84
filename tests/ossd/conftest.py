"""One ``sharelift ossd`` per test session, a fresh bucket per test, clients for both SDKs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from sharelift.local.ossd import OssServer

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@pytest.fixture(scope="module", autouse=True)
def _no_env_proxy() -> Iterator[None]:
    """Requests to 127.0.0.1 must not go through a proxy taken from the environment."""
    saved = {k: os.environ.pop(k) for k in PROXY_VARS if k in os.environ}
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def ossd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OssServer]:
    with OssServer(tmp_path_factory.mktemp("ossd") / "data") as server:
        yield server


@pytest.fixture
def bucket_name(ossd: OssServer) -> str:
    name = f"t-{uuid.uuid4().hex[:16]}"
    ossd.create_bucket(name)
    return name


@pytest.fixture(params=["v1", "v4"])
def bucket(request: pytest.FixtureRequest, ossd: OssServer, bucket_name: str):  # type: ignore[no-untyped-def]
    """An oss2.Bucket signing with V1 (oss2.Auth) or V4 (oss2.AuthV4)."""
    return ossd.bucket(bucket_name, request.param)


@pytest.fixture
def v2_client(ossd: OssServer):  # type: ignore[no-untyped-def]
    """An alibabacloud-oss-v2 client: V4, path style (IP endpoint), no retries."""
    return _make_v2_client(ossd)


@pytest.fixture
def make_v2_client(ossd: OssServer):  # type: ignore[no-untyped-def]
    """Build a v2 client with other credentials or config: make_v2_client(secret="x")."""

    def make(**kwargs: object):  # type: ignore[no-untyped-def]
        return _make_v2_client(ossd, **kwargs)  # type: ignore[arg-type]

    return make


def _make_v2_client(
    ossd: OssServer,
    secret: str | None = None,
    signature_version: str = "v4",
    access_key_id: str | None = None,
    **config: object,
):  # type: ignore[no-untyped-def]
    import alibabacloud_oss_v2 as oss

    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        access_key_id or ossd.access_key_id,
        secret if secret is not None else ossd.access_key_secret.reveal(),
    )
    cfg.region = ossd.region
    cfg.endpoint = ossd.endpoint
    cfg.signature_version = signature_version
    cfg.retry_max_attempts = 1
    for k, v in config.items():
        setattr(cfg, k, v)
    return oss.Client(cfg)
