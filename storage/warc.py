"""Write the browser's traffic of one capture as a WARC 1.1 file (warcio).

Playwright hands over bodies already decoded, so the records carry the decoded bytes:
``Content-Encoding`` and ``Transfer-Encoding`` are dropped and ``Content-Length`` is set
to the stored body's length, otherwise replay tools would try to gunzip plain bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

_HOP_HEADERS = {"content-encoding", "transfer-encoding", "content-length", "connection"}
WARC_VERSION = "WARC/1.1"


@dataclass
class Exchange:
    """One request the browser made and the response it got (if any)."""

    url: str
    method: str = "GET"
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    request_body: bytes | None = None
    status: int | None = None
    status_text: str = ""
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    resource_type: str = ""
    server_ip: str | None = None
    started_at: str = ""  # RFC 3339 UTC
    error: str | None = None


@dataclass
class Resource:
    """A file the capture made itself (rendered DOM, screenshot), stored as a resource record."""

    uri: str
    content_type: str
    data: bytes


def _reason(status: int, text: str) -> str:
    if text:
        return text
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _request_record(writer: WARCWriter, ex: Exchange, warc_date: str):
    parts = urlsplit(ex.url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    headers = [(k, v) for k, v in ex.request_headers if not k.startswith(":")]
    if not any(k.lower() == "host" for k, _ in headers):
        headers.insert(0, ("Host", parts.netloc))
    http_headers = StatusAndHeaders(f"{ex.method} {path} HTTP/1.1", headers, is_http_request=True)
    body = ex.request_body or b""
    return writer.create_warc_record(
        ex.url,
        "request",
        payload=io.BytesIO(body),
        length=len(body),
        http_headers=http_headers,
        warc_headers_dict={"WARC-Date": warc_date},
    )


def _response_record(
    writer: WARCWriter,
    ex: Exchange,
    warc_date: str,
    stream: BinaryIO | None = None,
    length: int | None = None,
):
    assert ex.status is not None
    if stream is None:
        body = ex.body or b""
        stream, length = io.BytesIO(body), len(body)
    headers = [(k, v) for k, v in ex.response_headers if k.lower() not in _HOP_HEADERS]
    headers.append(("Content-Length", str(length)))
    status_line = f"{ex.status} {_reason(ex.status, ex.status_text)}"
    http_headers = StatusAndHeaders(status_line, headers, protocol="HTTP/1.1")
    warc_headers = {"WARC-Date": warc_date}
    if ex.server_ip:
        warc_headers["WARC-IP-Address"] = ex.server_ip
    return writer.create_warc_record(
        ex.url,
        "response",
        payload=stream,
        length=length,
        http_headers=http_headers,
        warc_headers_dict=warc_headers,
    )


def build_warc(
    exchanges: list[Exchange],
    resources: list[Resource],
    *,
    captured_at: str,
    software: str = "citearchive",
    page_url: str = "",
) -> bytes:
    """Return a gzipped WARC 1.1 file: warcinfo, request/response pairs, then resources."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True, warc_version=WARC_VERSION)
    info = {"software": software, "format": "WARC File Format 1.1", "isPartOf": page_url}
    writer.write_record(writer.create_warcinfo_record("capture.warc.gz", info))
    for ex in exchanges:
        if ex.status is None:
            continue  # the browser got no response (failed or refused): nothing to replay
        date = ex.started_at or captured_at
        response = _response_record(writer, ex, date)
        request = _request_record(writer, ex, date)
        request.rec_headers.add_header(
            "WARC-Concurrent-To", response.rec_headers.get_header("WARC-Record-ID")
        )
        writer.write_record(response)
        writer.write_record(request)
    for res in resources:
        record = writer.create_warc_record(
            res.uri,
            "resource",
            payload=io.BytesIO(res.data),
            length=len(res.data),
            warc_content_type=res.content_type,
            warc_headers_dict={"WARC-Date": captured_at},
        )
        writer.write_record(record)
    return out.getvalue()


def write_fetched_warc(
    exchanges: list,
    out: Path,
    *,
    captured_at: str,
    software: str = "citearchive",
    page_url: str = "",
) -> None:
    """Write a gzipped WARC 1.1 of fetches whose bodies are files (the media of a page).

    ``exchanges`` carry ``body_path`` instead of bytes (``crawler.media.model.Exchange``);
    bodies are streamed, never held whole. A fetch repeated with the same answer (a
    playlist read twice) is written once.
    """
    seen: set[tuple[str, int, int]] = set()
    with out.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True, warc_version=WARC_VERSION)
        info = {"software": software, "format": "WARC File Format 1.1", "isPartOf": page_url}
        writer.write_record(writer.create_warcinfo_record(out.name, info))
        for ex in exchanges:
            size = ex.body_path.stat().st_size
            key = (ex.url, ex.status, size)
            if key in seen:
                continue
            seen.add(key)
            with ex.body_path.open("rb") as body:
                fetched = Exchange(
                    url=ex.url,
                    method=ex.method,
                    request_headers=ex.request_headers,
                    status=ex.status,
                    response_headers=ex.response_headers,
                )
                response = _response_record(writer, fetched, ex.started_at, body, size)
                request = _request_record(writer, fetched, ex.started_at)
                request.rec_headers.add_header(
                    "WARC-Concurrent-To", response.rec_headers.get_header("WARC-Record-ID")
                )
                writer.write_record(response)
                writer.write_record(request)
