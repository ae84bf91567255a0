"""One page's media: each found item re-used when a cheap check proves it unchanged,
else downloaded and read (ffprobe, poster, frame hashes). A failure is recorded on the
item with its reason; it never fails the page's capture."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from crawler import headerfields
from crawler.errors import MediaError
from crawler.media import probe
from crawler.media.model import KEPT, MediaRef, MediaResult, stable_url
from crawler.media.ytdl import FetchLimits, MediaFetcher, duration_text

logger = logging.getLogger(__name__)

# What of a kept entry a re-use copies: the bytes and everything read from them.
_KEPT_FIELDS = ("sha256", "size", "media_type", "probe", "info", "frames", "poster", "warc")
_EXTENSION_TYPES = {
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".ts": "video/mp2t",
}


@dataclass(frozen=True)
class MediaSettings:
    """What the media stage needs from the config ([media])."""

    limits: FetchLimits
    volatile: list[str]
    max_items: int


def _playlist_digest(text: bytes, volatile: list[str]) -> str:
    """sha256 of a playlist with its URIs' tokens removed: the same stream re-signed
    hashes the same."""
    lines = [
        stable_url(line, volatile) if line and not line.startswith(b"#") else line
        for line in (raw.strip() for raw in text.splitlines())
    ]
    return hashlib.sha256(b"\n".join(lines)).hexdigest()


class MediaCollector:
    """Turns a page's MediaRefs into MediaResults; files live under ``workroot``."""

    def __init__(self, settings: MediaSettings, proxy_url: str, workroot: Path) -> None:
        self.settings = settings
        self.proxy_url = proxy_url
        self.workroot = workroot

    def collect(self, refs: list[MediaRef], previous: list[dict], page: str) -> list[MediaResult]:
        return [self._one(ref, previous, page) for ref in refs[: self.settings.max_items]]

    def _one(self, ref: MediaRef, previous: list[dict], page: str) -> MediaResult:
        url = stable_url(ref.url, self.settings.volatile)
        entry: dict = {"kind": ref.kind, "found_by": ref.found_by, "url": url}
        if ref.gone:
            return MediaResult({**entry, "status": "gone", "reason": ref.gone})
        workdir = Path(tempfile.mkdtemp(prefix="media-", dir=self.workroot))
        fetcher = MediaFetcher(self.proxy_url, self.settings.limits, workdir, page)
        result = MediaResult(entry, workdir=workdir)
        try:
            prev = next((p for p in previous if p.get("url") == url and p["status"] in KEPT), None)
            same = self._unchanged_since(fetcher, ref, prev) if prev else None
            if prev is not None and same is not None:
                entry.update({k: prev.get(k) for k in _KEPT_FIELDS})
                entry.update(status="reused", reason=same, same_as=prev["_capture"])
                entry["validators"] = prev.get("validators") or {}
            elif ref.kind in ("video", "audio"):
                self._download(fetcher, ref, result)
            else:
                self._fetch_file(fetcher, ref, result)
        except MediaError as exc:
            logger.info(
                "media %s of %s: %s",
                url,
                page,
                exc.reason,
                extra={"url": page, "media_url": url, "error": exc.reason},
            )
            entry.update(status=exc.status, reason=exc.reason)
            result.file, result.poster = None, None
        except Exception as exc:
            # A bug or an unforeseen answer in the media stage must not cost the page.
            logger.exception("media %s of %s failed", url, page, extra={"media_url": url})
            entry.update(status="failed", reason=f"internal error: {type(exc).__name__}")
            result.file, result.poster = None, None
        result.exchanges = fetcher.ydl.exchanges
        return result

    def _unchanged_since(self, fetcher: MediaFetcher, ref: MediaRef, prev: dict) -> str | None:
        """Why the kept copy still stands (without fetching the media), or None."""
        validators = prev.get("validators") or {}
        if ref.found_by in ("hls", "dash"):
            status, _, body = fetcher.fetch(ref.url)
            digest = _playlist_digest(body.read_bytes(), self.settings.volatile)
            if status == 200 and digest == validators.get("manifest_sha256"):
                return "same stream manifest as before"
            return None
        conditional = {}
        if validators.get("etag"):
            conditional["If-None-Match"] = validators["etag"]
        if validators.get("last_modified"):
            conditional["If-Modified-Since"] = validators["last_modified"]
        if not conditional:
            return None
        status, headers = fetcher.check(ref.url, conditional)
        if status == 304:
            return "not modified (HTTP 304)"
        if (
            status == 200
            and validators.get("etag")
            and headerfields.field(headers.items(), "etag") == validators["etag"]
        ):
            return "same ETag"
        return None

    def _download(self, fetcher: MediaFetcher, ref: MediaRef, result: MediaResult) -> None:
        file, info = fetcher.download(ref.url)
        limits = self.settings.limits
        facts = probe.probe(file, limits.ffmpeg_dir)
        duration = facts.get("duration")
        if duration and duration > limits.max_duration_s:
            raise MediaError(
                f"over the {duration_text(limits.max_duration_s)} duration cap", status="skipped"
            )
        entry = result.entry
        entry.update(status="preserved", reason=None, probe=facts)
        entry["media_type"] = _EXTENSION_TYPES.get(file.suffix.lower(), "application/octet-stream")
        if (
            ref.kind == "audio"
            and entry["media_type"].startswith("video/")
            and not facts.get("width")
        ):
            entry["media_type"] = entry["media_type"].replace("video/", "audio/")
        entry["info"] = {"title": info.get("title"), "upload_date": info.get("upload_date")}
        if facts.get("width"):
            entry["frames"] = probe.frame_hashes(file, duration, limits.ffmpeg_dir)
            result.poster = probe.poster(file, duration, limits.ffmpeg_dir)
        entry["validators"] = self._validators(fetcher, ref)
        result.file = file

    def _fetch_file(self, fetcher: MediaFetcher, ref: MediaRef, result: MediaResult) -> None:
        status, headers, body = fetcher.fetch(ref.url)
        if status != 200:
            raise MediaError(f"HTTP {status}")
        media_type = headerfields.media_type(headers.items())
        data = body.read_bytes()
        entry = result.entry
        entry.update(status="preserved", reason=None, media_type=media_type or None)
        if ref.kind == "image":
            entry["frames"] = probe.image_hash(data)
        entry["validators"] = headerfields.validators(headers.items())
        result.file = body  # the spooled body: also the WARC record's payload

    def _validators(self, fetcher: MediaFetcher, ref: MediaRef) -> dict:
        """What tells next time whether the media changed: the file's ETag and
        Last-Modified, or the digest of the stream's manifest."""
        target = stable_url(ref.url, self.settings.volatile)
        for ex in fetcher.ydl.exchanges:
            if stable_url(ex.url, self.settings.volatile) != target:
                continue
            if ref.found_by in ("hls", "dash"):
                digest = _playlist_digest(ex.body_path.read_bytes(), self.settings.volatile)
                return {"manifest_sha256": digest}
            return headerfields.validators(ex.response_headers)
        return {}
