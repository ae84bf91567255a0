"""A capture run against S3 (moto's standalone server on loopback), with real Chromium."""

from __future__ import annotations

import hashlib
import os

import boto3
import pytest
from cliutil import history, run_cli, write_config
from fixture_site import FixtureSite

pytestmark = pytest.mark.browser


def test_capture_to_s3_stores_hash_addressed_blobs(tmp_path, s3_bucket):
    site = FixtureSite().start()
    try:
        config = write_config(tmp_path / "c.toml", f"s3://{s3_bucket}/arch")
        urls = [site.url("/static.html"), site.url("/js.html")]
        assert run_cli(config, "add", *urls).code == 0
        res = run_cli(config, "run-once", "--all")
        assert res.code == 0, res.err
        assert "2 new" in res.out
    finally:
        site.stop()
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
    checked = 0
    for url in urls:
        [cap] = history(config, url)
        assert cap["http_status"] == 200
        for meta in cap["artifacts"].values():
            sha = meta["sha256"]
            key = f"arch/blobs/sha256/{sha[:2]}/{sha[2:4]}/{sha}"
            body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == sha
            checked += 1
        manifest = s3.get_object(Bucket=s3_bucket, Key="arch/" + cap["manifest"])["Body"].read()
        assert hashlib.sha256(manifest).hexdigest() == cap["manifest_sha256"]
    assert checked == 10
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="arch/sources/")["Contents"]
    ]
    assert len(keys) == 2
