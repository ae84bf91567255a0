"""What the media stage passes along: media found on a page, and what became of each."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

KINDS = ("video", "audio", "image", "document")
# An entry with these statuses has its bytes in the store.
KEPT = ("preserved", "reused")


@dataclass(frozen=True)
class MediaRef:
    """One media item of the cited content, as found in the rendered page."""

    url: str  # absolute, exactly as the page asked for it
    kind: str  # one of KINDS
    found_by: str  # html5, hls, dash, jsonld, og, profile
    # Set when the browser's own request for it already failed: "HTTP 404".
    gone: str | None = None


@dataclass
class Exchange:
    """One HTTP exchange the media download made; its body is spooled to a file."""

    url: str
    method: str
    request_headers: list[tuple[str, str]]
    status: int
    response_headers: list[tuple[str, str]]
    body_path: Path
    started_at: str


@dataclass
class MediaResult:
    """One media item after the media stage: the manifest entry, and files to store."""

    entry: dict  # the manifest entry without blob refs (docs/media.md)
    file: Path | None = None  # the media file, when newly downloaded
    poster: bytes | None = None
    exchanges: list[Exchange] = field(default_factory=list)  # for the media WARC
    workdir: Path | None = None  # holds the files above; removed once they are stored


def stable_url(url: str, volatile: list[str]) -> str:
    """``url`` without the query parameters that sign or expire it (tokens, signatures),
    which change between fetches of the same file and would make every capture differ."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    patterns = [p.lower() for p in volatile]
    kept = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not any(fnmatch.fnmatchcase(k.lower(), p) for p in patterns)
    ]
    return urlunsplit(parts._replace(query=urlencode(kept)))
