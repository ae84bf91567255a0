"""A local fixture site on 127.0.0.1 (port 0) that tests capture with real Chromium.

Pages are mutable (tests edit them between runs) and every request is counted, so tests
can prove what the browser fetched — or did not.
"""

from __future__ import annotations

import struct
import threading
import time
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer holds ``text`` (offsets computed, so it parses)."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return assemble_pdf(objects)


def assemble_pdf(objects: list[bytes]) -> bytes:
    """A PDF file of numbered ``objects`` (1 is the catalog), xref offsets computed."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def make_png(width: int = 4, height: int = 4) -> bytes:
    """A small solid-colour PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\xcc\x22\x22" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def html(title: str, body: str, head: str = "") -> bytes:
    return (
        f"<!DOCTYPE html><html><head><meta charset=utf-8><title>{title}</title>{head}"
        f"</head><body>{body}</body></html>"
    ).encode()


def default_pages() -> dict[str, tuple[int, str, bytes, dict[str, str]]]:
    """path -> (status, content type, body, extra headers)."""
    h = "text/html; charset=utf-8"
    return {
        "/static.html": (
            200,
            h,
            html(
                "Security alert",
                "<article><h1>Security alert</h1><p>Avoid the airport gates. US citizens at the "
                "Abbey Gate should leave immediately.</p><img src='/pixel.png' alt=''></article>",
                "<link rel=stylesheet href='/style.css'>",
            ),
            {},
        ),
        "/style.css": (200, "text/css", b"body { font-family: sans-serif; color: #222 }", {}),
        "/pixel.png": (200, "image/png", make_png(), {}),
        "/js.html": (
            200,
            h,
            html(
                "Status",
                "<h1>Status</h1><div id=t>loading</div><script>setTimeout(function(){"
                "fetch('/data.json').then(function(r){return r.json()}).then(function(d){"
                "document.getElementById('t').textContent=d.text})},300)</script>",
            ),
            {},
        ),
        "/data.json": (200, "application/json", b'{"text": "Rendered by script 8125"}', {}),
        "/doc.pdf": (200, "application/pdf", make_pdf("Embassy alert in a PDF 4471"), {}),
        "/redirect": (301, h, b"", {"Location": "/static.html"}),
        "/gone.html": (404, h, html("Not found", "<h1>Page not found</h1>"), {}),
    }


def respond(
    handler: BaseHTTPRequestHandler, status: int, ctype: str, body: bytes, headers: dict[str, str]
) -> None:
    """Send one complete answer with its length, so the browser knows where it ends."""
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body)))
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


class FixtureSite:
    """The running site: ``url(path)``, mutable ``pages``, and ``hits`` per path."""

    def __init__(self) -> None:
        self.pages = default_pages()
        self.hits: Counter[str] = Counter()
        self.last_headers: dict[str, dict[str, str]] = {}  # path -> headers of its last request
        self.log: list[str] = []  # every request's path and query, in arrival order
        self.delays: dict[str, float] = {}  # path -> the server's think time before answering
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                with site._lock:
                    site.hits[path] += 1
                    site.log.append(self.path)
                    site.last_headers[path] = dict(self.headers.items())
                    entry = site.pages.get(path)
                    delay = site.delays.get(path, 0.0)
                if delay:
                    time.sleep(delay)  # the server's think time, not synchronisation
                if entry is None:
                    self.send_error(404)
                    return
                etag = entry[3].get("ETag")
                if etag is not None and self.headers.get("If-None-Match") == etag:
                    respond(self, 304, entry[1], b"", {"ETag": etag})  # as web servers do
                    return
                respond(self, *entry)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> FixtureSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
