"""A capture's preserved media for the UI's players: byte ranges, content types, posters.

Browsers play ``<video>`` and ``<audio>`` with range requests (``Range: bytes=0-`` first,
then seeks), so ``/captures/<id>/media/<n>`` answers them with ``206 Partial Content``. A
range is read from the store by a ranged read (a file seek, an S3 ranged GET) in chunks,
never by loading the whole blob; a request without ``Range`` gets the whole blob, verified.
"""

from __future__ import annotations

import re
from itertools import chain

from flask import Request, Response

from crawler.app import App
from crawler.media_get import duration_text, held_entry, is_held, media_of
from storage.index import CaptureRow

_SERVED_PREFIXES = ("audio/", "video/", "image/")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_BYTE_RANGE = re.compile(r"(\d*)-(\d*)")
IMMUTABLE = "private, max-age=31536000, immutable"


def served_type(media_type: object) -> str | None:
    """The Content-Type to serve a media entry under, or None: only audio, video, images
    and PDF keep their type; anything else (HTML, scripts, unknown) is a download."""
    value = str(media_type or "").split(";")[0].strip().lower()
    if _MEDIA_TYPE.fullmatch(value) and (
        value.startswith(_SERVED_PREFIXES) or value == "application/pdf"
    ):
        return value
    return None


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range ``header`` asks for, as (first, last) inclusive; None to send the
    whole body (no header, another unit, several ranges); ValueError when it cannot be
    satisfied (malformed, reversed, or starting past the end): the answer is 416."""
    if header is None or not header.strip().lower().startswith("bytes="):
        return None
    spec = header.strip()[6:].strip()
    if "," in spec:
        return None  # multipart answers are not worth it for players: send it all
    match = _BYTE_RANGE.fullmatch(spec)
    if match is None or match.group(1) == match.group(2) == "":
        raise ValueError(f"malformed range {header!r}")
    first, last = match.groups()
    if first == "":  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise ValueError(f"empty range {header!r}")
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if end < start or start >= size:
        raise ValueError(f"range {header!r} is outside 0-{size - 1}")
    return start, min(end, size - 1)


def media_response(app: App, row: CaptureRow, n: int, request: Request) -> Response:
    """Media ``n`` of ``row`` (NotFoundError when absent or not preserved), whole or a range."""
    entry = held_entry(row, media_of(app, row), n)
    sha = entry["sha256"]
    size = entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool):
        size = len(app.archive.get_blob(sha))
    if sha in request.if_none_match:
        response = Response(status=304)
    else:
        response = _body(app, sha, size, request)
    response.headers["Accept-Ranges"] = "bytes"
    response.set_etag(sha)
    response.headers["Cache-Control"] = IMMUTABLE
    content_type = served_type(entry.get("media_type"))
    if content_type is None:
        response.headers["Content-Type"] = "application/octet-stream"
        response.headers["Content-Disposition"] = f'attachment; filename="{sha}"'
    else:
        response.headers["Content-Type"] = content_type
    return response


def _body(app: App, sha: str, size: int, request: Request) -> Response:
    if_range = request.headers.get("If-Range")
    header = request.headers.get("Range")
    if if_range is not None and if_range.strip().strip('"') != sha:
        header = None  # the client holds another version: send the whole of this one
    try:
        wanted = parse_range(header, size)
    except ValueError:
        response = Response(status=416)
        response.headers["Content-Range"] = f"bytes */{size}"
        return response
    if wanted is None:
        return Response(app.archive.get_blob(sha), status=200)
    start, end = wanted
    chunks = app.archive.iter_blob_range(sha, start, end - start + 1)
    # The first chunk now: a missing blob is an error page, not a cut-off 206.
    first = next(chunks)
    response = Response(chain([first], chunks), status=206, direct_passthrough=True)
    response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    response.headers["Content-Length"] = str(end - start + 1)
    return response


def media_view(app: App, row: CaptureRow) -> list[dict]:
    """The capture page's media: what to show for each entry, and how."""
    shown = []
    for n, entry in enumerate(media_of(app, row), start=1):
        content_type = served_type(entry.get("media_type")) if is_held(entry) else None
        element = None
        if is_held(entry):
            element = "link"
            for prefix, name in (("video/", "video"), ("audio/", "audio"), ("image/", "img")):
                if content_type and content_type.startswith(prefix):
                    element = name
        poster = entry.get("poster") if isinstance(entry.get("poster"), dict) else {}
        probe = entry.get("probe") if isinstance(entry.get("probe"), dict) else {}
        shown.append(
            {
                "n": n,
                "element": element,
                "kind": entry.get("kind") or "media",
                "url": entry.get("url"),
                "status": entry.get("status"),
                "reason": entry.get("reason"),
                "sha256": entry.get("sha256"),
                "size": entry.get("size"),
                "media_type": entry.get("media_type"),
                "duration": duration_text(probe.get("duration")),
                "poster": poster.get("sha256") if isinstance(poster.get("sha256"), str) else None,
            }
        )
    return shown
