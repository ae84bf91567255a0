"""``citearchive verify``: prove every capture intact, find what a crash left behind.

For every manifest in the store: it parses, sits under the key its content implies, links
to the sha256 of its source's previous manifest, every blob it names is stored and its
bytes hash to the named sha256 and size, and, where the index recorded it, its bytes are
the ones the index recorded. Those are *damage*.

A crash can leave two harmless things (the write order is blobs, manifest, index row):
*orphan* blobs that no record names (killed between blobs and manifest) and *unindexed*
manifests (killed between manifest and index row). Repair removes the orphans and records
the unindexed manifests in the index; it never deletes or rewrites a manifest.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from crawler.errors import BlobNotFound, IntegrityError
from storage.archive import Archive, StoredManifest, blob_key, manifest_key
from storage.index import Index

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_BLOB_KEY = re.compile(r"blobs/sha256/[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{64})")


@dataclass(frozen=True)
class Problem:
    """One damaged manifest: what is wrong, where, and whether it is its source's latest."""

    kind: str  # malformed, misplaced, chain, missing_blob, corrupt_blob, size, changed, lost
    source_id: str
    key: str
    detail: str
    latest: bool = False
    url: str | None = None


@dataclass
class VerifyReport:
    """What verify found; ``damage`` decides the exit code, the rest are crash leftovers."""

    sources: int = 0
    manifests: int = 0
    blobs: int = 0  # distinct blobs read and hashed: those manifests name, and orphans
    stored_blobs: int = 0
    damage: list[Problem] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # sha256 of blobs nothing names
    unindexed: list[str] = field(default_factory=list)  # manifest keys the index lacks
    removed: list[str] = field(default_factory=list)
    indexed: list[str] = field(default_factory=list)
    repair_refused: str | None = None

    @property
    def clean(self) -> bool:
        return not self.damage

    def damaged_sources(self) -> list[str]:
        return sorted({p.source_id for p in self.damage if p.source_id != "-"})

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["clean"] = self.clean
        data["damaged_sources"] = self.damaged_sources()
        data["latest_damaged"] = sorted({p.source_id for p in self.damage if p.latest})
        return data


def referenced_hashes(value: Any) -> Iterator[str]:
    """Every sha256 a record mentions under a key ending in "sha256", at any depth.

    Wider than the artifacts on purpose: a blob is an orphan only if no record names it
    anywhere, so a field added later (media, attachments) cannot get its blobs deleted.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.endswith("sha256") and isinstance(item, str):
                if _SHA256_HEX.fullmatch(item):
                    yield item
            else:
                yield from referenced_hashes(item)
    elif isinstance(value, list):
        for item in value:
            yield from referenced_hashes(item)


class _Checker:
    """One pass over the store; blobs named by several manifests are hashed once."""

    def __init__(self, archive: Archive, index: Index | None) -> None:
        self.archive = archive
        self.index = index
        self.report = VerifyReport()
        self.referenced: set[str] = set()
        self._blob_results: dict[tuple[str, int | None], tuple[str, str] | None] = {}
        dump = index.dump() if index is not None else {"sources": [], "captures": []}
        self.urls = {s["id"]: s["canonical_url"] for s in dump["sources"]}
        self.recorded = {c["manifest_key"]: c for c in dump["captures"]}

    def run(self) -> VerifyReport:
        # Blobs are listed before manifests are read: a blob stored after this listing
        # cannot be taken for an orphan.
        stored = self._stored_blobs()
        by_source = self._manifest_keys()
        for source_id, keys in sorted(by_source.items()):
            self._check_source(source_id, keys)
        self._check_lost(by_source)
        for doc in self.archive.iter_documents():
            self.referenced.update(referenced_hashes(doc))
        self.report.stored_blobs = len(stored)
        self.report.orphans = sorted(stored - self.referenced)
        for sha256 in self.report.orphans:
            # A later capture of the same bytes would trust a stored blob without upload
            # (put_blob skips what exists), so a corrupt orphan is damage too.
            found = self._check_blob(sha256, None)
            if found is not None and found[0] == "corrupt_blob":
                self._damage(found[0], "-", blob_key(sha256), f"orphan: {found[1]}")
        self.report.sources = len(by_source)
        return self.report

    def _check_lost(self, by_source: dict[str, list[str]]) -> None:
        """Captures the index lists whose manifest the store no longer holds."""
        newest: dict[str, str] = {}
        for key, row in self.recorded.items():
            sid = row["source_id"]
            newest[sid] = max(newest.get(sid, key), key)
        for key, row in sorted(self.recorded.items()):
            sid = row["source_id"]
            if key not in by_source.get(sid, ()):
                latest = key == newest[sid]
                self._damage("lost", sid, key, "the index lists it; the store lacks it", latest)

    def _stored_blobs(self) -> set[str]:
        found = set()
        for key in self.archive.store.list("blobs/"):
            match = _BLOB_KEY.fullmatch(key)
            if match and blob_key(match.group(1)) == key:
                found.add(match.group(1))
        return found

    def _manifest_keys(self) -> dict[str, list[str]]:
        by_source: dict[str, list[str]] = {}
        for key in self.archive.store.list("captures/"):
            parts = key.split("/")
            if len(parts) == 3 and parts[2].endswith(".json"):
                by_source.setdefault(parts[1], []).append(key)
        return {sid: sorted(keys) for sid, keys in by_source.items()}

    def _damage(
        self, kind: str, source_id: str, key: str, detail: str, latest: bool = False
    ) -> None:
        problem = Problem(kind, source_id, key, detail, latest, self.urls.get(source_id))
        self.report.damage.append(problem)

    def _check_source(self, source_id: str, keys: list[str]) -> None:
        previous: StoredManifest | None = None
        judge_link = True
        for n, key in enumerate(keys):
            latest = n == len(keys) - 1
            self.report.manifests += 1
            try:
                stored = self.archive.read_manifest(key)
            except (IntegrityError, BlobNotFound) as exc:
                self._damage("malformed", source_id, key, str(exc), latest)
                # Unreadable, so the next manifest's link cannot be judged: only this
                # manifest's problem is reported, not a second one for its successor.
                judge_link = False
                continue
            self.referenced.update(referenced_hashes(stored.manifest))
            for kind, detail in self._manifest_problems(stored, previous, judge_link):
                self._damage(kind, source_id, key, detail, latest)
            previous, judge_link = stored, True

    def _manifest_problems(
        self, stored: StoredManifest, previous: StoredManifest | None, judge_link: bool
    ) -> Iterator[tuple[str, str]]:
        try:
            expected_key = manifest_key(stored.manifest)
        except ValueError as exc:
            yield "malformed", str(exc)
            expected_key = stored.key
        if expected_key != stored.key:
            yield "misplaced", f"its content belongs under {expected_key}"
        linked = stored.manifest.get("previous_manifest_sha256")
        expected = previous.sha256 if previous else None
        if judge_link and linked != expected:
            after = f"its predecessor {previous.key}" if previous else "nothing (first)"
            yield "chain", f"links to {linked}, but {after} hashes to {expected}"
        row = self.recorded.get(stored.key)
        if row is None and self.index is not None:
            self.report.unindexed.append(stored.key)
        elif row is not None and row["manifest_sha256"] != stored.sha256:
            recorded = row["manifest_sha256"]
            yield "changed", f"its bytes hash to {stored.sha256}; the index recorded {recorded}"
        yield from self._artifact_problems(stored.manifest.get("artifacts"))

    def _artifact_problems(self, artifacts: Any) -> Iterator[tuple[str, str]]:
        if not isinstance(artifacts, dict):
            yield "malformed", "artifacts is not an object"
            return
        for name, ref in sorted(artifacts.items()):
            sha256 = ref.get("sha256") if isinstance(ref, dict) else None
            size = ref.get("size") if isinstance(ref, dict) else None
            if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
                yield "malformed", f"artifact {name!r} names no sha256"
                continue
            found = self._check_blob(sha256, size if isinstance(size, int) else None)
            if found is not None:
                kind, detail = found
                yield kind, f"artifact {name!r}: {detail}"

    def _check_blob(self, sha256: str, size: int | None) -> tuple[str, str] | None:
        cache_key = (sha256, size)
        if cache_key not in self._blob_results:
            self._blob_results[cache_key] = self._read_blob(sha256, size)
            self.report.blobs = len({s for s, _ in self._blob_results})
        return self._blob_results[cache_key]

    def _read_blob(self, sha256: str, size: int | None) -> tuple[str, str] | None:
        try:
            data = self.archive.store.get(blob_key(sha256))
        except BlobNotFound:
            return "missing_blob", f"blob {sha256} is not stored"
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            return "corrupt_blob", f"blob {sha256} is corrupt: its bytes hash to {actual}"
        if size is not None and len(data) != size:
            return "size", f"blob {sha256} holds {len(data)} bytes, the manifest says {size}"
        return None


def verify(archive: Archive, index: Index | None = None) -> VerifyReport:
    """Check every manifest of the store (and, given an index, that it agrees)."""
    return _Checker(archive, index).run()


def repair(archive: Archive, index: Index, report: VerifyReport) -> None:
    """Remove the report's orphan blobs and record its unindexed manifests in the index.

    The caller holds the run lock: a run on this machine could otherwise be between storing
    a blob and the manifest that names it. Nothing is removed when a manifest could not be
    read, since the blobs it names are unknown.
    """
    if any(p.kind == "malformed" for p in report.damage):
        report.repair_refused = (
            "orphan blobs kept: a malformed manifest may name some of them; fix it first"
        )
    else:
        for sha256 in report.orphans:
            archive.store.delete(blob_key(sha256))
            report.removed.append(sha256)
    damaged = {p.key for p in report.damage}
    for key in report.unindexed:
        if key in damaged:
            continue  # a damaged manifest is reported, never recorded as a good capture
        stored = archive.read_manifest(key)
        source_id = stored.manifest["source_id"]
        if index.get_source(source_id) is None:
            source = archive.get_source(source_id)
            if source is None:
                continue  # no source record to index it under; `reindex` reports that
            index.upsert_source(source)
        index.record_capture(stored)
        report.indexed.append(key)
