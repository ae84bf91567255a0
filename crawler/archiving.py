"""Store one capture: blobs first, then its manifest, then the index row.

The order is what keeps the archive consistent through a crash: a manifest is written only
once every blob it names is stored, and the index only learns of a manifest that exists,
so an interruption leaves at most unreferenced blobs.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from crawler.items import CaptureItem
from crawler.verdict import UNREACHABLE, Previous, Verdict, content_fingerprint, decide
from storage.archive import Archive, StoredManifest
from storage.ids import new_capture_id
from storage.index import Index

MANIFEST_SCHEMA = 1
ARTIFACT_MEDIA_TYPES = {
    "dom": "text/html; charset=utf-8",
    "screenshot": "image/png",
    "text": "text/plain; charset=utf-8",
    "warc": "application/warc",
}


def _software() -> str:
    try:
        return f"citearchive {version('citearchive')}"
    except PackageNotFoundError:
        return "citearchive"


def previous_answered(index: Index, source_id: str) -> Previous | None:
    """The source's last capture that got an answer, as the verdict needs it."""
    for row in reversed(index.captures(source_id)):
        if row.verdict != UNREACHABLE:
            return Previous(verdict=row.verdict, content_sha256=row.text_sha256)
    return None


def _artifacts(item: CaptureItem) -> dict[str, bytes]:
    found = {
        "raw": item.raw,
        "dom": item.dom,
        "screenshot": item.screenshot,
        "text": item.text.encode("utf-8") if item.text is not None and item.answered else None,
        "warc": item.warc,
    }
    return {name: data for name, data in found.items() if data is not None}


def build_manifest(item: CaptureItem, verdict: Verdict, artifacts: dict[str, dict]) -> dict:
    return {
        "schema": MANIFEST_SCHEMA,
        "id": new_capture_id(),
        "source_id": item.source_id,
        "url": item.url,
        "captured_at": item.captured_at,
        "final_url": item.final_url,
        "http_status": item.http_status,
        "headers": [list(h) for h in item.headers],
        "redirect_chain": item.redirect_chain,
        "media_type": item.media_type,
        "verdict": verdict.name,
        "reason": verdict.reason,
        "error": item.error,
        "refused": item.refused,
        "resources": item.resources,
        "timings": item.timings,
        "artifacts": artifacts,
        "fingerprints": {"text_sha256": content_fingerprint(item) if item.answered else None},
        "software": _software(),
    }


def store_capture(archive: Archive, index: Index, item: CaptureItem) -> StoredManifest:
    """Judge ``item`` against the source's history and store it; returns the manifest."""
    verdict = decide(item, previous_answered(index, item.source_id))
    artifacts = {}
    for name, data in _artifacts(item).items():
        ref = archive.put_blob(data)
        if name == "raw":
            media_type = item.media_type or "application/octet-stream"
        else:
            media_type = ARTIFACT_MEDIA_TYPES[name]
        artifacts[name] = {"sha256": ref.sha256, "size": ref.size, "media_type": media_type}
    stored = archive.write_manifest(build_manifest(item, verdict, artifacts))
    index.record_capture(stored)
    return stored
