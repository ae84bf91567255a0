"""Shared fixtures. Keep this thin: the logic lives in helper modules such as s3server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import s3server
from pgserver import index_url, pg_index_url, pg_server, pg_url  # noqa: F401  (fixtures)
from redisserver import redis_server, redis_url  # noqa: F401  (fixtures, registered here)

from storage.objectstore import ObjectStore, open_store

STORE_BACKENDS = ["file", "s3"]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of an S3 server (moto) on loopback, shared by the whole session."""
    with s3server.running_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh empty bucket; AWS_* env points boto3 at the test server with dummy keys."""
    s3server.use_s3_endpoint(monkeypatch, s3_endpoint, tmp_path / "aws")
    return s3server.create_bucket(s3_endpoint)


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty object store, once per backend."""
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    # Looked up lazily so file-only runs never start the S3 server.
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/archive"


@pytest.fixture
def store(store_url: str) -> ObjectStore:
    """An empty ObjectStore opened with open_store, once per backend."""
    return open_store(store_url)
