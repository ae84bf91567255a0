"""A real S3 endpoint for tests: moto's standalone server on loopback, plus bucket helpers.

The server speaks HTTP on 127.0.0.1, so the code under test goes through boto3's whole
stack (endpoint resolution, signing, retries), not an in-process mock.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

# Dummy credentials; distinctive so tests can assert they never leak into messages.
ACCESS_KEY_ID = "AKIATESTCITEARCHIVE1"
SECRET_ACCESS_KEY = "citearchive-test-secret-never-print-me"
REGION = "us-east-1"

_AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_REGION",
)


@contextmanager
def running_s3_server() -> Iterator[str]:
    """Run moto's server on a free loopback port; yields its endpoint URL."""
    # Werkzeug logs every request to stderr; that noise would bury real failures.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def use_s3_endpoint(monkeypatch: pytest.MonkeyPatch, endpoint: str, config_dir: Path) -> None:
    """Point the standard boto3 configuration at endpoint with dummy credentials.

    The user's ~/.aws files and AWS_* variables are masked, so a developer's real
    profile can neither change the test nor receive its requests.
    """
    for name in _AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_dir / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config_dir / "credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def admin_client(endpoint: str) -> Any:
    """A client for test setup and inspection, independent of the code under test."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )


def unique_bucket_name() -> str:
    """A bucket name no other test uses: the server lives for the whole session."""
    return f"citearchive-test-{secrets.token_hex(6)}"


def create_bucket(endpoint: str) -> str:
    """Create a fresh, empty bucket; returns its name."""
    name = unique_bucket_name()
    admin_client(endpoint).create_bucket(Bucket=name)
    return name
