"""The archive: content-addressed blobs, source records and hash-chained capture manifests.

Layout in any ObjectStore (see DESIGN.md, "Archive model"):

    blobs/sha256/ab/cd/<sha256>                         immutable content
    sources/<source-id>.json                            one source
    captures/<source-id>/<timestamp>-<capture-id>.json  one capture's manifest

Write order is blobs, then manifest: a manifest never points at a missing blob.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from crawler.errors import BlobNotFound, IntegrityError, StorageError
from storage.ids import timestamp_key
from storage.objectstore import ObjectStore, RangedStore

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# One key segment: ids become part of keys and must neither nest nor escape.
_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_JSON = "application/json"
RANGE_CHUNK = 1 << 20  # what one ranged read of a blob asks the store for


@dataclass(frozen=True)
class BlobRef:
    """A stored blob: its sha256 (lowercase hex) and size in bytes."""

    sha256: str
    size: int


@dataclass(frozen=True)
class StoredManifest:
    """A manifest as stored: its key, the sha256 of its stored bytes, and its content."""

    key: str
    sha256: str
    manifest: dict


def canonical_json(value: Any) -> bytes:
    """Deterministic UTF-8 JSON with a trailing newline: same data, same bytes, same hash.

    Compact: a manifest is written for every re-check, and indentation was a third of it.
    """
    # allow_nan=False: NaN/Infinity are not JSON and other readers would reject the file.
    text = json.dumps(
        value, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )
    return (text + "\n").encode("utf-8")


def blob_key(sha256: str) -> str:
    """blobs/sha256/ab/cd/<sha256>; StorageError if sha256 is not lowercase hex."""
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
        raise StorageError(f"not a sha256 hex digest: {sha256!r}")
    return f"blobs/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def manifest_key(manifest: dict) -> str:
    """captures/<source_id>/<timestamp_key(captured_at)>-<id>.json for a manifest."""
    source_id = _require_id(manifest, "source_id")
    capture_id = _require_id(manifest, "id")
    captured_at = manifest.get("captured_at")
    if not isinstance(captured_at, str):
        raise ValueError("manifest has no captured_at")
    return f"captures/{source_id}/{timestamp_key(captured_at)}-{capture_id}.json"


def _require_id(record: dict, field: str) -> str:
    value = record.get(field)
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(f"{field} must be a non-empty id of [A-Za-z0-9._-], got {value!r}")
    return value


def _parse_json(key: str, data: bytes) -> dict:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{key} is not valid UTF-8 JSON") from exc
    if not isinstance(value, dict):
        raise IntegrityError(f"{key} does not hold a JSON object")
    return value


class Archive:
    """Blobs, sources and manifests in one ObjectStore."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    # Blobs

    def put_blob(self, data: bytes) -> BlobRef:
        """Store data under its sha256; content already stored is not uploaded again."""
        ref = BlobRef(hashlib.sha256(data).hexdigest(), len(data))
        key = blob_key(ref.sha256)
        # A race with another writer of the same bytes is harmless: puts are atomic and
        # both write identical content.
        if not self.store.exists(key):
            self.store.put(key, data, content_type="application/octet-stream")
        return ref

    def get_blob(self, sha256: str) -> bytes:
        """The blob's bytes, verified: IntegrityError if they do not hash to sha256."""
        key = blob_key(sha256)
        data = self.store.get(key)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise IntegrityError(f"blob {sha256} is corrupt: its stored bytes hash to {actual}")
        return data

    def iter_blob_range(self, sha256: str, start: int, length: int) -> Iterator[bytes]:
        """``length`` bytes of the blob from ``start``, in chunks of at most RANGE_CHUNK.

        A store with ``get_range`` (local, S3) reads only those bytes, which therefore are
        not hashed (``verify`` checks whole blobs); any other store reads the whole blob,
        verified. IntegrityError if the blob ends before the range does.
        """
        if not isinstance(self.store, RangedStore):
            data = self.get_blob(sha256)
            if start + length > len(data):
                raise IntegrityError(f"blob {sha256} is shorter than {start + length} bytes")
            yield data[start : start + length]
            return
        key = blob_key(sha256)
        end = start + length
        while start < end:
            chunk = self.store.get_range(key, start, min(RANGE_CHUNK, end - start))
            if not chunk:
                raise IntegrityError(f"blob {sha256} is shorter than {end} bytes")
            start += len(chunk)
            yield chunk

    def has_blob(self, sha256: str) -> bool:
        """Whether a blob with this sha256 is stored (its content is not verified)."""
        return self.store.exists(blob_key(sha256))

    # Sources

    def put_source(self, source: dict) -> None:
        """Store (or replace) sources/<id>.json."""
        source_id = _require_id(source, "id")
        self.store.put(f"sources/{source_id}.json", canonical_json(source), content_type=_JSON)

    def get_source(self, source_id: str) -> dict | None:
        """The stored source record, or None."""
        key = f"sources/{source_id}.json"
        try:
            data = self.store.get(key)
        except BlobNotFound:
            return None
        return _parse_json(key, data)

    def iter_sources(self) -> Iterator[dict]:
        """Every stored source, ordered by id."""
        for key in self.store.list("sources/"):
            if key.endswith(".json") and "/" not in key.removeprefix("sources/"):
                yield _parse_json(key, self.store.get(key))

    # Documents: what was imported from each citing document, for re-import diffs

    def put_document(self, document: dict) -> None:
        """Store (or replace) documents/<id>.json."""
        document_id = _require_id(document, "id")
        self.store.put(
            f"documents/{document_id}.json", canonical_json(document), content_type=_JSON
        )

    def get_document(self, document_id: str) -> dict | None:
        key = f"documents/{document_id}.json"
        try:
            data = self.store.get(key)
        except BlobNotFound:
            return None
        return _parse_json(key, data)

    def delete_document(self, document_id: str) -> None:
        self.store.delete(f"documents/{document_id}.json")

    def iter_documents(self) -> Iterator[dict]:
        for key in self.store.list("documents/"):
            if key.endswith(".json") and "/" not in key.removeprefix("documents/"):
                yield _parse_json(key, self.store.get(key))

    # Manifests

    def write_manifest(self, manifest: dict) -> StoredManifest:
        """Chain the manifest to the source's latest one and store it; blobs must exist.

        The caller's dict is not modified; the returned StoredManifest holds the stored
        content, including previous_manifest_sha256.
        """
        key = manifest_key(manifest)
        source_id = manifest["source_id"]
        artifacts = manifest.get("artifacts") or {}
        if not isinstance(artifacts, dict):
            raise ValueError("manifest artifacts must be a dict name -> blob reference")
        for name, ref in sorted(artifacts.items()):
            sha256 = ref.get("sha256") if isinstance(ref, dict) else None
            if not isinstance(sha256, str) or not self.has_blob(sha256):
                raise IntegrityError(
                    f"manifest {key}: artifact {name!r} refers to blob {sha256!r}, "
                    "which is not stored; store blobs before the manifest"
                )
        previous = self.latest_manifest(source_id)
        if previous is not None and previous.key >= key:
            # The chain follows key order; a manifest sorting before the latest (clock skew,
            # a reused id) would make verify_chain fail for everyone later.
            raise IntegrityError(
                f"manifest {key} does not sort after the source's latest manifest {previous.key}"
            )
        content = dict(manifest)
        content["previous_manifest_sha256"] = previous.sha256 if previous else None
        data = canonical_json(content)
        self.store.put(key, data, content_type=_JSON)
        return StoredManifest(key, hashlib.sha256(data).hexdigest(), json.loads(data))

    def _manifest_keys(self, source_id: str) -> list[str]:
        if not _ID.fullmatch(source_id):
            raise StorageError(f"invalid source id {source_id!r}")
        prefix = f"captures/{source_id}/"
        return [
            key
            for key in self.store.list(prefix)
            if key.endswith(".json") and "/" not in key.removeprefix(prefix)
        ]

    def _read_manifest(self, key: str) -> StoredManifest:
        data = self.store.get(key)
        return StoredManifest(key, hashlib.sha256(data).hexdigest(), _parse_json(key, data))

    def read_manifest(self, key: str) -> StoredManifest:
        """The manifest stored at ``key`` (as named in the index)."""
        return self._read_manifest(key)

    def iter_manifests(self, source_id: str) -> Iterator[StoredManifest]:
        """The source's manifests, oldest first (keys start with a sortable timestamp)."""
        for key in self._manifest_keys(source_id):
            yield self._read_manifest(key)

    def latest_manifest(self, source_id: str) -> StoredManifest | None:
        """The source's newest manifest, or None before its first capture."""
        keys = self._manifest_keys(source_id)
        return self._read_manifest(keys[-1]) if keys else None

    def verify_chain(self, source_id: str) -> None:
        """Raise IntegrityError unless every manifest links to the hash of its predecessor.

        Also checks that each manifest is stored under the key its content implies, so
        moving or renaming a manifest is detected too.
        """
        previous: StoredManifest | None = None
        for stored in self.iter_manifests(source_id):
            try:
                expected_key = manifest_key(stored.manifest)
            except ValueError as exc:
                raise IntegrityError(f"manifest {stored.key} is malformed: {exc}") from exc
            if expected_key != stored.key:
                raise IntegrityError(
                    f"manifest {stored.key} is stored under the wrong key (content says "
                    f"{expected_key})"
                )
            linked = stored.manifest.get("previous_manifest_sha256")
            expected = previous.sha256 if previous else None
            if linked != expected:
                after = f"its predecessor {previous.key}" if previous else "nothing (first)"
                raise IntegrityError(
                    f"hash chain of source {source_id} broken at {stored.key}: it links to "
                    f"{linked}, but {after} hashes to {expected}"
                )
            previous = stored
