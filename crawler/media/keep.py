"""Store one page's media like every other artifact: content-addressed blobs (the file,
its poster, the WARC of its fetches) named in the capture manifest's ``media`` list."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from crawler.media.model import MediaResult
from storage.archive import Archive, BlobRef, blob_key
from storage.warc import write_fetched_warc


def put_file(archive: Archive, path: Path) -> BlobRef:
    """Store a file as a blob. It is hashed first, reading in chunks, so a file already
    stored (the same video again) is neither read whole nor uploaded again."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    ref = BlobRef(digest.hexdigest(), size)
    key = blob_key(ref.sha256)
    if not archive.store.exists(key):
        archive.store.put(key, path.read_bytes(), content_type="application/octet-stream")
    return ref


def _ref(ref: BlobRef, media_type: str) -> dict:
    return {"sha256": ref.sha256, "size": ref.size, "media_type": media_type}


def keep_media(
    archive: Archive, results: list[MediaResult], *, captured_at: str, page_url: str, software: str
) -> list[dict]:
    """Store what each result fetched; the manifest's media entries, in page order."""
    entries = []
    for result in results:
        entry = dict(result.entry)
        if result.file is not None:
            ref = put_file(archive, result.file)
            entry["sha256"], entry["size"] = ref.sha256, ref.size
        if result.poster:
            entry["poster"] = _ref(archive.put_blob(result.poster), "image/png")
        if result.exchanges and entry.get("status") == "preserved":
            warc = (result.workdir or result.exchanges[0].body_path.parent) / "media.warc.gz"
            write_fetched_warc(
                result.exchanges,
                warc,
                captured_at=captured_at,
                software=software,
                page_url=page_url,
            )
            entry["warc"] = _ref(put_file(archive, warc), "application/warc")
        entries.append(entry)
    return entries


def discard(results: list[MediaResult]) -> None:
    """Remove the results' files from the local disk (stored or not)."""
    for result in results:
        if result.workdir is not None:
            shutil.rmtree(result.workdir, ignore_errors=True)
