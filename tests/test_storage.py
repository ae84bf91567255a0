"""Object stores and the archive, run over every backend (local directory and S3)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import botocore.config
import pytest
import s3server

from crawler.errors import (
    BlobNotFound,
    ConfigError,
    IntegrityError,
    StorageError,
)
from storage.archive import Archive, blob_key, canonical_json
from storage.ids import (
    new_capture_id,
    parse_rfc3339,
    source_id,
    timestamp_key,
    utc_now_rfc3339,
)
from storage.localstore import LocalStore
from storage.objectstore import STORE_SCHEMES, ObjectStore, check_key, open_store
from storage.s3store import S3Store

BAD_KEYS = [
    "",
    "/abs",
    "a//b",
    "a/",
    "..",
    "../escape",
    "a/../b",
    "a/./b",
    ".",
    "a b",
    "a\\b",
    "caf\u00e9",
    "a\x00b",
    "a#b",
]


class CountingStore:
    """Wraps a real store and counts writes, to prove what the archive uploads."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.puts: list[str] = []

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        self.puts.append(key)
        self.inner.put(key, data, content_type=content_type)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def manifest(sid: str, captured_at: str, *, capture_id: str | None = None, **extra) -> dict:
    return {
        "id": capture_id or new_capture_id(),
        "source_id": sid,
        "captured_at": captured_at,
        "verdict": "new",
        "artifacts": {},
        **extra,
    }


# ids


def test_source_id_is_truncated_sha256_of_canonical_url():
    url = "https://example.org/caf\u00e9?a=1"
    assert source_id(url) == hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
    assert source_id(url) != source_id("https://example.org/cafe?a=1")


def test_new_capture_id_is_16_random_hex_chars():
    ids = {new_capture_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)


def test_timestamp_key_format():
    assert timestamp_key("2026-11-27T14:15:00.123456Z") == "20261127T141500123456Z"
    assert timestamp_key("2026-11-27T14:15:00Z") == "20261127T141500000000Z"
    assert timestamp_key("2026-11-27T15:15:00.5+01:00") == "20261127T141500500000Z"
    with pytest.raises(ValueError):
        timestamp_key("2026-11-27T14:15:00")  # no offset: ambiguous
    with pytest.raises(ValueError):
        timestamp_key("yesterday")


def test_timestamp_keys_sort_chronologically():
    start = datetime(2025, 12, 31, 23, 59, 58, tzinfo=UTC)
    steps = [0, 1, 999_999, 1_000_000, 1_000_001, 1_500_000, 2_000_000, 86_400_000_000]
    moments = [start + timedelta(microseconds=step) for step in steps]
    # Mixed spellings: plain strings of these would sort wrongly ("Z" > ".").
    texts = [
        m.strftime("%Y-%m-%dT%H:%M:%SZ") if m.microsecond == 0 else m.isoformat() for m in moments
    ]
    shuffled = random.Random(7).sample(texts, len(texts))
    assert sorted(shuffled, key=timestamp_key) == texts
    assert sorted(timestamp_key(t) for t in shuffled) == [timestamp_key(t) for t in texts]


def test_utc_now_rfc3339_has_microseconds_and_z():
    before = datetime.now(UTC)
    now = utc_now_rfc3339()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", now)
    assert before <= parse_rfc3339(now) <= after


# check_key and open_store


@pytest.mark.parametrize("key", BAD_KEYS)
def test_check_key_rejects_unsafe_keys(key):
    with pytest.raises(StorageError):
        check_key(key)


def test_check_key_accepts_archive_keys():
    for key in ["blobs/sha256/ab/cd/abcd", "sources/x.json", "a-b_c.d/E9", ".hidden/x"]:
        assert check_key(key) == key


def test_open_store_file_url(tmp_path):
    store = open_store((tmp_path / "s").as_uri())
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "s"
    store.put("x/y", b"1")
    assert (tmp_path / "s" / "x" / "y").read_bytes() == b"1"


@pytest.mark.parametrize(
    "url",
    ["ftp://host/x", "archive", "", "file:relative/dir", "file://otherhost/abs", "s3:///prefix"],
)
def test_open_store_rejects_bad_urls(url):
    with pytest.raises(ConfigError) as info:
        open_store(url)
    if url:
        assert url in str(info.value)


def test_open_store_never_echoes_url_credentials():
    with pytest.raises(ConfigError) as info:
        open_store("s3://AKIAXYZ:hunter2secret@bucket-name/prefix")
    assert "hunter2secret" not in str(info.value)
    assert "AKIAXYZ" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        open_store("gopher://user:hunter2secret@host/")
    assert "hunter2secret" not in str(info.value)


def test_store_schemes_registry():
    assert set(STORE_SCHEMES) == {"file", "s3"}


# ObjectStore contract, every backend


def test_put_get_roundtrip(store):
    payload = bytes(range(256)) * 3
    store.put("a/b/c.bin", payload, content_type="application/octet-stream")
    store.put("empty", b"")
    assert store.get("a/b/c.bin") == payload
    assert store.get("empty") == b""
    store.put("a/b/c.bin", b"replaced")
    assert store.get("a/b/c.bin") == b"replaced"


def test_exists(store):
    assert store.exists("k/v") is False
    store.put("k/v", b"1")
    assert store.exists("k/v") is True
    assert store.exists("k") is False  # a "directory" is not an object


def test_get_missing_raises_blob_not_found(store):
    with pytest.raises(BlobNotFound) as info:
        store.get("no/such/key")
    assert "no/such/key" in str(info.value)


def test_list_is_sorted_and_filtered_by_prefix(store):
    keys = ["b/2", "a/10", "a/9", "a-x", "a.b", "a/sub/1", "ab", "c"]
    for key in random.Random(3).sample(keys, len(keys)):
        store.put(key, key.encode())
    assert list(store.list("")) == ["a-x", "a.b", "a/10", "a/9", "a/sub/1", "ab", "b/2", "c"]
    assert list(store.list("a/")) == ["a/10", "a/9", "a/sub/1"]
    assert list(store.list("a")) == ["a-x", "a.b", "a/10", "a/9", "a/sub/1", "ab"]
    assert list(store.list("a/s")) == ["a/sub/1"]
    assert list(store.list("zz/")) == []
    assert list(store.list("c/")) == []  # "c" is an object, not a folder
    assert list(store.list("c/d/")) == []


def test_delete(store):
    store.put("d/1", b"1")
    store.put("d/2", b"2")
    store.delete("d/1")
    assert not store.exists("d/1")
    with pytest.raises(BlobNotFound):
        store.get("d/1")
    assert list(store.list("d/")) == ["d/2"]
    store.delete("d/1")  # deleting a missing key is not an error
    assert list(store.list("d/")) == ["d/2"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_store_rejects_bad_keys(store, key):
    for call in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(StorageError):
            call()
    assert list(store.list("")) == []


@pytest.mark.parametrize("prefix", ["/", "../", "a//", "a b"])
def test_list_rejects_bad_prefixes(store, prefix):
    with pytest.raises(StorageError):
        list(store.list(prefix))


# LocalStore specifics


def test_local_put_leaves_no_temp_files_and_list_skips_strays(tmp_path):
    store = LocalStore(tmp_path)
    store.put("x/obj", b"data")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["obj"]
    (tmp_path / "x" / ".#obj.deadbeef").write_bytes(b"half")  # a crashed writer's leftover
    (tmp_path / "x" / "bad name").write_bytes(b"?")
    assert list(store.list("")) == ["x/obj"]


def test_local_failed_write_leaves_nothing(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    store.put("k", b"old")

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StorageError) as info:
        store.put("k", b"new")
    assert "Input/output error" in str(info.value)
    monkeypatch.undo()
    assert store.get("k") == b"old"  # the old object survives whole
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # and no temp file is left
    with pytest.raises(StorageError):
        LocalStore(tmp_path / "k").put("under/a/file", b"x")


# S3Store specifics


def test_s3_keys_live_under_the_prefix(s3_bucket, s3_endpoint):
    store = open_store(f"s3://{s3_bucket}/archive")
    admin = s3server.admin_client(s3_endpoint)
    store.put("sources/x.json", b"{}", content_type="application/json")
    head = admin.head_object(Bucket=s3_bucket, Key="archive/sources/x.json")
    assert head["ContentType"] == "application/json"
    # Neighbours outside the prefix, and a console-made folder marker, are not objects.
    admin.put_object(Bucket=s3_bucket, Key="archive2/sources/y.json", Body=b"")
    admin.put_object(Bucket=s3_bucket, Key="other/z", Body=b"")
    admin.put_object(Bucket=s3_bucket, Key="archive/sources/", Body=b"")
    assert list(store.list("")) == ["sources/x.json"]
    assert list(store.list("sources/")) == ["sources/x.json"]


def test_s3_list_paginates(s3_bucket):
    store = open_store(f"s3://{s3_bucket}/p")
    keys = [f"k/{n:02d}" for n in range(7)]
    for key in reversed(keys):
        store.put(key, b"")
    requests = []

    # Tiny pages through botocore's public event hooks, instead of uploading 1000+ keys.
    def small_pages(params, **_):
        params["MaxKeys"] = 2

    def count(params, **_):
        requests.append(params.get("ContinuationToken"))

    events = store.client.meta.events
    events.register("provide-client-params.s3.ListObjectsV2", small_pages)
    events.register("before-parameter-build.s3.ListObjectsV2", count)
    assert list(store.list("k/")) == keys
    assert len(requests) == 4
    assert requests[0] is None
    assert all(requests[1:])


def test_s3_client_is_configured_the_standard_way(s3_bucket, s3_endpoint, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    store = open_store(f"s3://{s3_bucket}/deep/prefix/")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == (s3_bucket, "deep/prefix")
    config = store.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (10, 60)
    assert config.retries == {"mode": "standard", "total_max_attempts": 6}
    assert store.client.meta.region_name == "us-east-1"
    assert store.client.meta.endpoint_url == s3_endpoint
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    assert open_store(f"s3://{s3_bucket}").client.meta.region_name == "eu-west-3"


def test_s3_missing_bucket_is_a_clear_storage_error(s3_bucket):
    store = open_store("s3://citearchive-no-such-bucket/prefix")
    calls = {
        "put": lambda: store.put("k", b"x"),
        "get": lambda: store.get("k"),
        "exists": lambda: store.exists("k"),
        "list": lambda: list(store.list("")),
        "delete": lambda: store.delete("k"),
    }
    for name, call in calls.items():
        with pytest.raises(StorageError) as info:
            call()
        message = str(info.value)
        assert type(info.value) is StorageError, name  # not BlobNotFound: the bucket is gone
        assert "'citearchive-no-such-bucket'" in message, name
        assert "does not exist" in message, name
        assert "\n" not in message
        assert s3server.SECRET_ACCESS_KEY not in message
        assert s3server.ACCESS_KEY_ID not in message


def test_s3_unreachable_endpoint_is_a_storage_error(s3_bucket):
    # A port that was free a moment ago; one attempt keeps the test fast.
    with s3server.running_s3_server() as endpoint:
        pass
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=s3server.ACCESS_KEY_ID,
        aws_secret_access_key=s3server.SECRET_ACCESS_KEY,
        config=botocore.config.Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    store = S3Store(client, "some-bucket", "p")
    with pytest.raises(StorageError) as info:
        store.get("k")
    message = str(info.value)
    assert "'some-bucket'" in message
    assert "unreachable" in message
    assert s3server.SECRET_ACCESS_KEY not in message


def test_s3_open_makes_no_request(s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    store = open_store("s3://any-bucket/prefix")  # configuration only; fails on first use
    assert store.url == "s3://any-bucket/prefix"


# Archive: blobs


def test_put_blob_content_addressed(store):
    archive = Archive(store)
    data = b"<html>cited page</html>"
    ref = archive.put_blob(data)
    digest = hashlib.sha256(data).hexdigest()
    assert (ref.sha256, ref.size) == (digest, len(data))
    assert list(store.list("blobs/")) == [f"blobs/sha256/{digest[:2]}/{digest[2:4]}/{digest}"]
    assert archive.has_blob(digest)
    assert archive.get_blob(digest) == data
    assert not archive.has_blob("0" * 64)


def test_put_blob_dedupes(store):
    counting = CountingStore(store)
    archive = Archive(counting)
    first = archive.put_blob(b"same bytes")
    second = archive.put_blob(b"same bytes")
    # A second archive over the same store: dedupe asks the store, not a cache.
    third = Archive(counting).put_blob(b"same bytes")
    assert first == second == third
    assert counting.puts == [blob_key(first.sha256)]
    other = archive.put_blob(b"other bytes")
    assert counting.puts == [blob_key(first.sha256), blob_key(other.sha256)]


def test_get_blob_verifies_hash(store):
    archive = Archive(store)
    ref = archive.put_blob(b"original")
    store.put(blob_key(ref.sha256), b"tampered")
    with pytest.raises(IntegrityError) as info:
        archive.get_blob(ref.sha256)
    assert ref.sha256 in str(info.value)
    assert hashlib.sha256(b"tampered").hexdigest() in str(info.value)


def test_get_blob_missing_and_malformed(store):
    archive = Archive(store)
    with pytest.raises(BlobNotFound):
        archive.get_blob("ab" * 32)
    for bad in ["xyz", "AB" * 32, "../" + "a" * 61]:
        with pytest.raises(StorageError):
            archive.get_blob(bad)


# Archive: sources


def test_sources_roundtrip_as_canonical_json(store):
    archive = Archive(store)
    records = [
        {"id": source_id(url), "canonical_url": url, "urls": [url], "citations": []}
        for url in ["https://b.example/caf\u00e9", "https://a.example/", "https://c.example/"]
    ]
    for record in records:
        archive.put_source(record)
    first = records[0]
    raw = store.get(f"sources/{first['id']}.json")
    assert raw == canonical_json(first)
    assert raw.endswith(b"}\n")
    assert "caf\u00e9".encode() in raw  # UTF-8, not \u escapes
    assert list(json.loads(raw)) == sorted(first)
    assert archive.get_source(first["id"]) == first
    assert archive.get_source("0" * 32) is None
    assert list(archive.iter_sources()) == sorted(records, key=lambda r: r["id"])


# Archive: manifests


def test_manifest_refused_when_a_blob_is_missing(store):
    archive = Archive(store)
    sid = source_id("https://example.org/")
    stored = archive.put_blob(b"dom")
    artifacts = {
        "dom": {"sha256": stored.sha256, "size": 3, "media_type": "text/html"},
        "screenshot": {"sha256": "f" * 64, "size": 9, "media_type": "image/png"},
    }
    with pytest.raises(IntegrityError) as info:
        archive.write_manifest(manifest(sid, "2026-01-01T00:00:00Z", artifacts=artifacts))
    assert "screenshot" in str(info.value)
    assert list(store.list("captures/")) == []
    del artifacts["screenshot"]
    written = archive.write_manifest(manifest(sid, "2026-01-01T00:00:00Z", artifacts=artifacts))
    assert written.manifest["artifacts"] == artifacts


def test_manifest_requires_its_fields(store):
    archive = Archive(store)
    for missing in ["id", "source_id", "captured_at"]:
        m = manifest("s1", "2026-01-01T00:00:00Z")
        del m[missing]
        with pytest.raises(ValueError):
            archive.write_manifest(m)
    with pytest.raises(ValueError):
        archive.write_manifest(manifest("../s1", "2026-01-01T00:00:00Z"))
    assert list(store.list("")) == []


def _write_chain(archive: Archive, sid: str, times: list[str]) -> list:
    return [archive.write_manifest(manifest(sid, t, verdict=f"v{n}")) for n, t in enumerate(times)]


def test_hash_chain_links_stored_bytes(store):
    archive = Archive(store)
    sid = source_id("https://example.org/chain")
    first_input = manifest(sid, "2026-01-01T00:00:00Z")
    snapshot = dict(first_input)
    first = archive.write_manifest(first_input)
    assert first_input == snapshot  # the caller's dict is left alone
    rest = _write_chain(archive, sid, ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"])
    chain = [first, *rest]
    for stored in chain:
        raw = store.get(stored.key)
        assert stored.sha256 == hashlib.sha256(raw).hexdigest()
        assert stored.manifest == json.loads(raw)
        assert raw == canonical_json(stored.manifest)
    assert chain[0].manifest["previous_manifest_sha256"] is None
    assert chain[1].manifest["previous_manifest_sha256"] == chain[0].sha256
    assert chain[2].manifest["previous_manifest_sha256"] == chain[1].sha256
    assert list(archive.iter_manifests(sid)) == chain
    assert archive.latest_manifest(sid) == chain[2]
    assert archive.latest_manifest(source_id("https://example.org/other")) is None
    archive.verify_chain(sid)  # intact: no error
    # Chains are per source.
    other = archive.write_manifest(
        manifest(source_id("https://x.example/"), "2020-01-01T00:00:00Z")
    )
    assert other.manifest["previous_manifest_sha256"] is None


def test_verify_chain_detects_an_edited_manifest(store):
    archive = Archive(store)
    sid = source_id("https://example.org/edit")
    chain = _write_chain(archive, sid, [f"2026-01-0{d}T00:00:00Z" for d in (1, 2, 3)])
    edited = dict(chain[1].manifest, verdict="unchanged")
    store.put(chain[1].key, canonical_json(edited))
    with pytest.raises(IntegrityError) as info:
        archive.verify_chain(sid)
    assert chain[2].key in str(info.value)


def test_verify_chain_detects_a_deleted_manifest(store):
    archive = Archive(store)
    sid = source_id("https://example.org/delete")
    chain = _write_chain(archive, sid, [f"2026-01-0{d}T00:00:00Z" for d in (1, 2, 3)])
    store.delete(chain[1].key)
    with pytest.raises(IntegrityError) as info:
        archive.verify_chain(sid)
    assert chain[2].key in str(info.value)


def test_verify_chain_detects_a_moved_or_forged_first_manifest(store):
    archive = Archive(store)
    sid = source_id("https://example.org/move")
    chain = _write_chain(archive, sid, ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"])
    raw = store.get(chain[1].key)
    moved = chain[1].key.replace("20260102T", "20260105T")
    store.delete(chain[1].key)
    store.put(moved, raw)
    with pytest.raises(IntegrityError, match="wrong key"):
        archive.verify_chain(sid)
    store.delete(moved)
    store.put(chain[1].key, raw)
    archive.verify_chain(sid)
    forged = dict(chain[0].manifest, previous_manifest_sha256="0" * 64)
    store.put(chain[0].key, canonical_json(forged))
    with pytest.raises(IntegrityError, match="broken"):
        archive.verify_chain(sid)


def test_manifest_keys_sort_chronologically(store):
    archive = Archive(store)
    sid = source_id("https://example.org/order")
    times = [
        "2025-12-31T23:59:59.999999Z",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.000001Z",
        "2026-01-01T00:00:00.5Z",
        "2026-01-01T00:00:01Z",
        "2026-01-01T00:00:10Z",
    ]
    # Ids in reverse order, so only the timestamp can produce the right order.
    ids = [f"{n:x}" * 16 for n in range(15, 15 - len(times), -1)]
    written = [
        archive.write_manifest(manifest(sid, t, capture_id=i))
        for t, i in zip(times, ids, strict=True)
    ]
    keys = [w.key for w in written]
    assert keys == sorted(keys)
    assert list(store.list(f"captures/{sid}/")) == keys
    assert [m.manifest["captured_at"] for m in archive.iter_manifests(sid)] == times
    assert keys[0] == f"captures/{sid}/20251231T235959999999Z-{ids[0]}.json"
    archive.verify_chain(sid)


def test_manifest_older_than_the_latest_is_refused(store):
    archive = Archive(store)
    sid = source_id("https://example.org/skew")
    archive.write_manifest(manifest(sid, "2026-01-02T00:00:00Z"))
    with pytest.raises(IntegrityError):
        archive.write_manifest(manifest(sid, "2026-01-01T00:00:00Z"))
    assert len(list(store.list(f"captures/{sid}/"))) == 1
    archive.verify_chain(sid)


def test_unreadable_manifest_is_an_integrity_error(store):
    archive = Archive(store)
    sid = source_id("https://example.org/garbage")
    key = archive.write_manifest(manifest(sid, "2026-01-01T00:00:00Z")).key
    store.put(key, b"\xff not json")
    with pytest.raises(IntegrityError):
        list(archive.iter_manifests(sid))


def test_local_store_tree_matches_the_design(tmp_path):
    root = tmp_path / "archive"
    archive = Archive(open_store(root.as_uri()))
    sid = source_id("https://example.org/")
    ref = archive.put_blob(b"x")
    archive.put_source({"id": sid, "canonical_url": "https://example.org/"})
    art = {"text": {"sha256": ref.sha256, "size": 1, "media_type": "text/plain"}}
    archive.write_manifest(
        manifest(sid, "2026-11-27T14:15:00.123456Z", capture_id="c" * 16, artifacts=art)
    )
    files = sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())
    assert files == [
        f"blobs/sha256/{ref.sha256[:2]}/{ref.sha256[2:4]}/{ref.sha256}",
        f"captures/{sid}/20261127T141500123456Z-{'c' * 16}.json",
        f"sources/{sid}.json",
    ]
