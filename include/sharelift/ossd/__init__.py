"""``sharelift ossd``: an OSS-compatible object server that keeps objects in files.

Tests, the demo and the benchmark run it instead of Alibaba Cloud OSS. It speaks the part of
the OSS REST API that sharelift and the official SDKs (oss2, alibabacloud-oss-v2) use, with
OSS's XML, headers, error codes and V1/V4 signatures, and stores each object atomically on
disk (see ``store``). Start it with ``sharelift ossd --data-dir DIR ...`` or, from Python,
with ``sharelift.local.ossd.OssServer``.
"""

from __future__ import annotations

SECRET_ENV = "SHARELIFT_OSSD_ACCESS_KEY_SECRET"

__all__ = ["SECRET_ENV"]
