"""The bench's local site: N article-like pages, served on 127.0.0.1 with request counts.

Every page has a stylesheet, an image and text written by a script. Most pages are
*static*: the article is in the HTML and the script only fills a "related" box. A share
of them are *scripted*: the article body itself arrives by fetch() and is written by the
script, so only a rendering browser sees it. ``edit(n)`` changes one paragraph of page n,
in the HTML or in the JSON its script loads. Static pages carry ETag and Last-Modified
and answer conditional requests with 304, as most web servers do.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time
import zlib
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CSS = (
    b"body{font-family:Georgia,serif;max-width:42em;margin:2em auto;line-height:1.5}"
    b"h1{color:#222}aside{border-top:1px solid #ccc;font-size:.8em}img{max-width:100%}"
)
SENTENCES = (
    "Officials said the alert was revised after the meeting on Tuesday.",
    "The embassy advised citizens to avoid the area around the airport gates.",
    "Witnesses described long queues and a heavy security presence overnight.",
    "A spokesperson declined to comment on the timing of the statement.",
    "Analysts noted that the wording differed from the earlier version.",
)


def make_png(width: int = 480, height: int = 240) -> bytes:
    """A banded PNG of an article picture's size (about 12 KB)."""
    # Flat bands compress like a photo's JPEG would not, but the size is what matters here.
    raw = b"".join(
        b"\x00"
        + b"".join(bytes(((x + y) // 24 * 16 % 256, x // 40 * 20 % 256, 160)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def paragraphs(n: int, edited: bool) -> list[str]:
    found = [f"{SENTENCES[(n + i) % 5]} (Report {n}, part {i}.)" for i in range(10)]
    if edited:
        found[3] = f"Correction: the statement in report {n} was withdrawn on Friday."
    return found


class BenchSite:
    """N pages under /a/<n>; page n is scripted when n % scripted_every == 0."""

    def __init__(self, pages: int, scripted_every: int = 4) -> None:
        self.pages = pages
        self.scripted_every = scripted_every
        self.png = make_png()
        self.edited: set[int] = set()
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def scripted(self, n: int) -> bool:
        return self.scripted_every > 0 and n % self.scripted_every == 0

    def urls(self, ns: range | None = None) -> list[str]:
        return [f"{self.base}/a/{n}" for n in (ns or range(self.pages))]

    def edit(self, n: int) -> None:
        self.edited.add(n)

    def page(self, n: int) -> bytes:
        related = json.dumps([f"Report {(n + k) % self.pages}" for k in (1, 2, 3)])
        if self.scripted(n):
            body = (
                "<div id=body>Loading…</div><script>"
                f"fetch('/data/{n}.json').then(r=>r.json()).then(d=>{{"
                "document.getElementById('body').innerHTML="
                "d.paragraphs.map(p=>'<p>'+p+'</p>').join('')})</script>"
            )
        else:
            body = "".join(f"<p>{p}</p>" for p in paragraphs(n, n in self.edited))
        return (
            "<!DOCTYPE html><html><head><meta charset=utf-8>"
            f"<title>Report {n}</title><link rel=stylesheet href=/style.css></head><body>"
            f"<article><h1>Report {n}</h1><img src=/img.png alt='Scene'>{body}</article>"
            "<aside><h2>Related</h2><ul id=related></ul></aside><script>"
            f"for(const t of {related}){{const li=document.createElement('li');"
            "li.textContent=t;document.getElementById('related').appendChild(li)}</script>"
            "</body></html>"
        ).encode()

    def data(self, n: int) -> bytes:
        return json.dumps({"paragraphs": paragraphs(n, n in self.edited)}).encode()

    def respond(self, path: str) -> tuple[bytes, str] | None:
        if path == "/style.css":
            return CSS, "text/css"
        if path == "/img.png":
            return self.png, "image/png"
        try:
            if path.startswith("/data/") and path.endswith(".json"):
                return self.data(int(path[6:-5])), "application/json"
            if path.startswith("/a/"):
                n = int(path[3:])
                if 0 <= n < self.pages:
                    return self.page(n), "text/html; charset=utf-8"
        except ValueError:
            pass
        return None

    def start(self) -> str:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with site._lock:
                    site.hits[self.path] += 1
                found = site.respond(self.path)
                if found is None:
                    self.send_error(404)
                    return
                body, ctype = found
                etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", formatdate(1_700_000_000, usegmt=True))
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = serve(Handler)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        return self.base

    def page_hits(self) -> int:
        with self._lock:
            return sum(c for p, c in self.hits.items() if p.startswith("/a/"))

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class SlowSite:
    """Small pages (any path with ``/p``) on 127.0.0.1, each answered after ``wait_s`` seconds."""

    def __init__(self, wait_s: float) -> None:
        self.hits = 0
        lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if "/p" not in self.path:
                    self.send_error(404)
                    return
                with lock:
                    site.hits += 1
                time.sleep(wait_s)  # the server's own think time, not synchronisation
                body = f"<!DOCTYPE html><title>{self.path}</title><p>Page {self.path}.</p>"
                data = body.encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve(Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """``handler`` served on 127.0.0.1, a free port, from a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
