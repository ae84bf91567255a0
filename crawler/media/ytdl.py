"""Fetch media with yt-dlp used as a library, every request through the egress proxy.

The proxy (``crawler.egress_proxy``) applies the crawler's destination policy to each
request yt-dlp makes and to each redirect hop, so a media URL cannot reach loopback,
private, link-local or metadata addresses unless the config allows them. yt-dlp is told
to use its native downloaders only (no ffmpeg or aria2c fetching on their own) and runs
ffmpeg solely to merge what it fetched. Every exchange is recorded, its body spooled to
disk, for the media's WARC.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yt_dlp import YoutubeDL
from yt_dlp.networking import Request
from yt_dlp.networking.exceptions import HTTPError, RequestError
from yt_dlp.utils import DownloadError

from crawler.errors import MediaError
from crawler.media.model import Exchange
from crawler.recorder import PROXY_ERROR_HEADER, REFUSED_HEADER
from storage.ids import utc_now_rfc3339

logger = logging.getLogger(__name__)

MB = 1024 * 1024


@dataclass(frozen=True)
class FetchLimits:
    """Caps and clock of one media item's fetch."""

    max_bytes: int
    max_duration_s: float
    timeout_s: float
    user_agent: str
    ffmpeg_dir: str


class _SpooledBody:
    """Wraps a response stream: what is read is also written to a file; at EOF the
    exchange is recorded. A body read only in part (a sniffed header) is not recorded."""

    def __init__(self, fp: Any, path: Path, done: Any) -> None:
        self._fp, self._out, self._done = fp, path.open("wb"), done
        self.path = path

    @property
    def closed(self) -> bool:
        return self._fp.closed

    def readable(self) -> bool:
        return True

    def read(self, amt: int | None = None, **kwargs: Any) -> bytes:
        data = self._fp.read(amt, **kwargs)
        if not self._out.closed:
            self._out.write(data)
            if amt is None or not data or self._fp.closed:
                self._finish(complete=True)
        return data

    def _finish(self, *, complete: bool) -> None:
        self._out.close()
        if complete:
            self._done()
        else:
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if not self._out.closed:
            self._finish(complete=False)
        self._fp.close()


class RecordingYoutubeDL(YoutubeDL):
    """YoutubeDL that keeps every complete exchange it makes (``exchanges``)."""

    def __init__(self, params: dict, spool: Path) -> None:
        super().__init__(params, auto_init=False)
        self.add_default_info_extractors()
        self.exchanges: list[Exchange] = []
        self._spool = spool
        self._numbers = itertools.count()

    def urlopen(self, req: Any) -> Any:
        req = Request(req) if isinstance(req, str) else req
        started = utc_now_rfc3339()
        response = super().urlopen(req)
        path = self._spool / f"body-{next(self._numbers)}"
        exchange = Exchange(
            url=response.url,
            method=req.method,
            request_headers=list(req.headers.items()),
            status=response.status,
            response_headers=list(response.headers.items()),
            body_path=path,
            started_at=started,
        )
        response.fp = _SpooledBody(response.fp, path, lambda: self.exchanges.append(exchange))
        return response


class _Log:
    """yt-dlp's messages go to our log (never to stdout), the last error kept."""

    def __init__(self) -> None:
        self.last_error: str | None = None
        # yt-dlp says so only in a progress line, then returns without a file.
        self.over_size_cap = False

    def debug(self, msg: str) -> None:
        self.over_size_cap |= "larger than max-filesize" in msg
        logger.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        self.debug(msg)

    def warning(self, msg: str) -> None:
        logger.info("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        self.last_error = re.sub(r"^ERROR:\s*", "", msg).splitlines()[0][:300]
        logger.info("yt-dlp: %s", msg)


def duration_text(seconds: float) -> str:
    """7200 -> "2 h", 90 -> "1.5 min", 5 -> "5 s"."""
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


class MediaFetcher:
    """One media item's fetches: a work folder, a recording YoutubeDL, a deadline."""

    def __init__(self, proxy_url: str, limits: FetchLimits, workdir: Path, referer: str) -> None:
        self.limits = limits
        self.workdir = workdir
        self.deadline = time.monotonic() + limits.timeout_s
        self.log = _Log()
        self._skip: str | None = None
        spool = workdir / "spool"
        spool.mkdir(parents=True, exist_ok=True)
        self.ydl = RecordingYoutubeDL(self._params(proxy_url, referer), spool)

    def _params(self, proxy_url: str, referer: str) -> dict:
        cap = self.limits.max_bytes
        return {
            "proxy": proxy_url,
            "socket_timeout": min(self.limits.timeout_s, 30.0),
            "http_headers": {"User-Agent": self.limits.user_agent, "Referer": referer},
            "paths": {"home": str(self.workdir), "temp": str(self.workdir)},
            "outtmpl": {"default": "media.%(ext)s"},
            # The best single file within the cap; separate streams merged when that is all.
            "format": f"best[filesize<?{cap}][filesize_approx<?{cap}]/bestvideo*+bestaudio/best",
            "merge_output_format": "mp4/webm/mkv",
            "max_filesize": cap,
            "match_filter": self._refuse,
            "progress_hooks": [self._progress],
            "logger": self.log,
            "quiet": True,
            "noprogress": True,
            "noplaylist": True,
            "force_generic_extractor": True,
            "cachedir": False,
            "retries": 1,
            "fragment_retries": 1,
            "extractor_retries": 0,
            "skip_unavailable_fragments": False,  # never keep a video with holes as whole
            "hls_prefer_native": True,
            "external_downloader": {"default": "native"},
            "ffmpeg_location": self.limits.ffmpeg_dir,
            "overwrites": True,
            "continuedl": False,
        }

    def _refuse(self, info: dict, *, incomplete: bool = False) -> str | None:
        if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
            self._skip = "live stream: not downloaded"
        elif (info.get("duration") or 0) > self.limits.max_duration_s:
            self._skip = f"over the {duration_text(self.limits.max_duration_s)} duration cap"
        return self._skip

    def _progress(self, status: dict) -> None:
        done = status.get("downloaded_bytes") or 0
        if done > self.limits.max_bytes:
            error = self._over_cap()
            self._skip = error.reason
            raise error
        if time.monotonic() > self.deadline:
            raise MediaError(f"timed out after {self.limits.timeout_s:g} s")

    def download(self, url: str) -> tuple[Path, dict]:
        """The media file yt-dlp made of ``url``, and yt-dlp's info about it."""
        try:
            info = self.ydl.extract_info(url, download=True)
        except MediaError:
            raise
        except DownloadError as exc:
            raise self._error(exc) from exc
        if self._skip:
            raise MediaError(self._skip, status="skipped")
        wanted = (info or {}).get("requested_downloads") or []
        files = [Path(d["filepath"]) for d in wanted if d.get("filepath")]
        files = [f for f in files if f.is_file()]
        if not files:
            if self.log.over_size_cap:
                raise self._over_cap()
            raise MediaError(self.log.last_error or "yt-dlp produced no file")
        return files[0], info or {}

    def _error(self, exc: DownloadError) -> MediaError:
        cause = exc.exc_info[1] if exc.exc_info else None
        while cause is not None and not isinstance(cause, (HTTPError, RequestError)):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, HTTPError):
            return http_error(cause)
        if self._skip:
            return MediaError(self._skip, status="skipped")
        return MediaError(self.log.last_error or str(exc).splitlines()[0])

    def _open(self, url: str, headers: dict[str, str] | None = None) -> Any:
        """The response to a GET through yt-dlp's HTTP stack (a 304's too); errors mapped."""
        try:
            return self.ydl.urlopen(Request(url, headers=headers or {}))
        except HTTPError as exc:
            if exc.status == 304 and exc.response is not None:
                return exc.response
            raise http_error(exc) from exc
        except RequestError as exc:
            raise MediaError(str(exc.msg or exc).splitlines()[0][:300]) from exc

    def _over_cap(self) -> MediaError:
        return MediaError(f"over the {self.limits.max_bytes / MB:g} MB cap", status="skipped")

    def check(self, url: str, headers: dict[str, str]) -> tuple[int, dict]:
        """The status and headers of a conditional GET; the body is not read."""
        with self._open(url, headers) as response:
            return response.status, dict(response.headers.items())

    def fetch(self, url: str) -> tuple[int, dict, Path]:
        """A plain GET (an image, a PDF, a playlist); the body, up to the cap, is spooled
        to a file."""
        with self._open(url) as response:
            if int(response.headers.get("Content-Length") or 0) > self.limits.max_bytes:
                raise self._over_cap()
            read = 0
            while chunk := response.read(1024 * 1024):
                read += len(chunk)
                if read > self.limits.max_bytes:
                    raise self._over_cap()
                if time.monotonic() > self.deadline:
                    raise MediaError(f"timed out after {self.limits.timeout_s:g} s")
            response.read()  # EOF: the exchange is recorded
            return response.status, dict(response.headers.items()), response.fp.path


def http_error(exc: HTTPError) -> MediaError:
    """An HTTP error answer as a media error: 404/410 mean the media is gone."""
    headers = exc.response.headers if exc.response is not None else {}
    refused = headers.get(REFUSED_HEADER)
    if refused:
        return MediaError(f"refused: {refused}", status="failed")
    proxy = headers.get(PROXY_ERROR_HEADER)
    if proxy:
        return MediaError(proxy)
    status = "gone" if exc.status in (404, 410) else "failed"
    return MediaError(f"HTTP {exc.status}", status=status)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
