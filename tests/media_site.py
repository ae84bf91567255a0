"""A local media site on 127.0.0.1 (port 0): pages with video, audio and photos, for media tests.

Every media file sits behind a named *slot* (``site.slots[name]``): what file it serves, the
rotating CDN token in its URL, whether the page still shows it, whether the URL now 404s or
redirects. Tests flip slots between capture runs. Files are served as a CDN does: Range
requests (Chromium fetches media with ``Range: bytes=0-``) answered 206, ETag and
Last-Modified with 304s, HEAD. Every request is logged with its headers, so a test can tell
the browser's own media fetches (``Sec-Fetch-Dest``) from the downloader's.

Pages: ``/video.html`` (slot ``clip``) and ``/video-<slot>.html`` for any video slot,
``/hls.html`` (a script player loading an HLS playlist, slot ``stream``),
``/cnn-video.html`` (JSON-LD VideoObject and a related-videos rail, slot ``cnn``),
``/tweet.html`` (a photo and a video, slots ``tweetphoto`` and ``tweetvideo``),
``/ad.html`` (a video in the article, slot ``adpage``, and an advert video from /ads/),
``/plain.html`` (no media at all).
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from clips import Clips

TYPES = {
    ".mp4": "video/mp4",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".jpg": "image/jpeg",
}
TEXT = {
    "video": "Footage from outside the airport gate shows the crowd before the blast {n}.",
    "hls": "The stream below was recorded by a reporter at the Abbey Gate 5512.",
    "cnn": "CNN video: the moment the second explosion hit near the Baron hotel 7380.",
    "tweet": "Photo and video from the scene, shared by a reporter at 18:02 local time 2291.",
    "ad": "The embassy's statement, read out on camera this morning 6604.",
    "plain": "A plain alert without any media: avoid the airport gates 3318.",
}


@dataclass
class Slot:
    """One media URL of the site and what it answers."""

    file: Path | None  # None: the URL answers 404 while the page still shows it
    ext: str = ".mp4"
    token: int = 0  # the ?token= of the URL; rotating it changes the URL, not the bytes
    shown: bool = True  # False: the page no longer contains the element at all
    redirect: str | None = None  # the URL answers 302 to this location


@dataclass
class Hit:
    method: str
    path: str
    query: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def browser(self) -> bool:
        """Chromium marks its own fetches with Sec-Fetch-Dest; downloaders do not."""
        return "sec-fetch-dest" in {k.lower() for k in self.headers}


def validators(data: bytes) -> tuple[str, str]:
    """ETag and Last-Modified of a body: both change when the bytes change."""
    digest = hashlib.sha256(data).hexdigest()
    seconds = 1_700_000_000 + int(digest[:6], 16)  # distinct per content, fixed per content
    return f'"{digest[:16]}"', formatdate(seconds, usegmt=True)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single ``bytes=`` range, or None for the whole body.

    ValueError for a range that cannot be satisfied (answered 416)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header.removeprefix("bytes=").strip().partition("-")
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise ValueError(header)
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError(header)
    return start, end


class MediaSite:
    """The running site: ``url(path)``, ``slots``, ``log`` of every request."""

    def __init__(self, clips: Clips) -> None:
        self.clips = clips
        self.slots: dict[str, Slot] = {
            "clip": Slot(clips.clip_a),
            "stream": Slot(clips.hls, ext=".m3u8"),
            "cnn": Slot(clips.clip_a),
            "tweetphoto": Slot(clips.photo, ext=".jpg"),
            "tweetvideo": Slot(clips.clip_b),
            "adpage": Slot(clips.clip_a),
        }
        self.log: list[Hit] = []
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.answer(self, head=False)

            def do_HEAD(self) -> None:
                site.answer(self, head=True)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    # ---- what tests call ------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base + path

    def add_video(self, name: str, file: Path) -> str:
        """A new video slot and the URL of its page, ``/video-<name>.html``."""
        self.slots[name] = Slot(file)
        return self.url(f"/video-{name}.html")

    def media_path(self, name: str) -> str:
        """The slot's URL path without its token (what the manifest should record)."""
        if name == "stream":
            return "/media/stream/index.m3u8"
        return f"/media/{name}{self.slots[name].ext}"

    def media_url(self, name: str, token: bool = False) -> str:
        slot = self.slots[name]
        return self.url(self.media_path(name) + (f"?token=T{slot.token}x" if token else ""))

    def mark(self) -> int:
        """A position in the log: ``hits(since=mark)`` sees only later requests."""
        with self._lock:
            return len(self.log)

    def hits(self, path: str, since: int = 0, until: int | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self.log[since:until] if h.path == path]

    def downloads(self, path: str, since: int = 0, until: int | None = None) -> list[Hit]:
        """Requests for ``path`` by anything but the browser that were answered with a body."""
        return [
            h
            for h in self.hits(path, since, until)
            if not h.browser and h.method == "GET" and h.status in (200, 206)
        ]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- serving --------------------------------------------------------------------------

    def answer(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        parts = urlsplit(handler.path)
        status, ctype, body, extra = self.resolve(parts.path)
        if status == 200 and body is not None and ctype in TYPES.values():
            status, body, extra = self.conditional(handler, body)
        hit = Hit(handler.command, parts.path, parts.query, status, dict(handler.headers.items()))
        with self._lock:
            self.log.append(hit)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(body or b"")))
            for key, value in extra.items():
                handler.send_header(key, value)
            handler.end_headers()
            if body and not head:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # Chromium drops a media stream once it has what it needs

    def conditional(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        """304, 206, 416 or 200 for a media body, as a CDN answers."""
        etag, modified = validators(body)
        extra = {"ETag": etag, "Last-Modified": modified, "Accept-Ranges": "bytes"}
        if handler.headers.get("If-None-Match") == etag:
            return 304, b"", extra
        since = handler.headers.get("If-Modified-Since")
        if since and not handler.headers.get("If-None-Match"):
            try:
                if parsedate_to_datetime(since) >= parsedate_to_datetime(modified):
                    return 304, b"", extra
            except (TypeError, ValueError):
                pass
        try:
            wanted = byte_range(handler.headers.get("Range"), len(body))
        except ValueError:
            return 416, b"", {**extra, "Content-Range": f"bytes */{len(body)}"}
        if wanted is None:
            return 200, body, extra
        first, last = wanted
        extra["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
        return 206, body[first : last + 1], extra

    def resolve(self, path: str) -> tuple[int, str, bytes | None, dict[str, str]]:
        """(status, content type, body, headers) of a path, from the slots' current state."""
        page = self.page(path)
        if page is not None:
            return 200, "text/html; charset=utf-8", page, {}
        if path.startswith("/media/stream/"):
            slot = self.slots["stream"]
            if slot.file is None:
                return 404, "text/plain", b"no such stream", {}
            return self.file(slot.file.parent / path.removeprefix("/media/stream/"))
        if path == "/ads/ad.mp4":
            return self.file(self.clips.ad)
        if path == "/media/thumb.jpg":
            return self.file(self.clips.photo)
        if path.startswith("/media/related-"):
            return self.file(self.clips.clip_b)
        name = path.removeprefix("/media/").rsplit(".", 1)[0]
        slot = self.slots.get(name) if path.startswith("/media/") else None
        if slot is None:
            return 404, "text/plain", b"not here", {}
        if slot.redirect is not None:
            return 302, "text/plain", b"", {"Location": slot.redirect}
        if slot.file is None:
            return 404, "text/plain", b"gone", {}
        return self.file(slot.file)

    def file(self, path: Path) -> tuple[int, str, bytes | None, dict[str, str]]:
        if not path.is_file():
            return 404, "text/plain", b"not here", {}
        return 200, TYPES[path.suffix], path.read_bytes(), {}

    # ---- pages ----------------------------------------------------------------------------

    def page(self, path: str) -> bytes | None:
        if path == "/video.html":
            return self.video_page("clip")
        if path.startswith("/video-") and path.endswith(".html"):
            name = path.removeprefix("/video-").removesuffix(".html")
            return self.video_page(name) if name in self.slots else None
        builders = {
            "/hls.html": self.hls_page,
            "/cnn-video.html": self.cnn_page,
            "/tweet.html": self.tweet_page,
            "/ad.html": self.ad_page,
            "/plain.html": lambda: doc("Alert", f"<article><p>{TEXT['plain']}</p></article>"),
        }
        build = builders.get(path)
        return build() if build else None

    def element(self, name: str, tag: str = "video") -> str:
        slot = self.slots[name]
        if not slot.shown:
            return ""
        src = html.escape(self.media_url(name, token=True))
        if tag == "img":
            return f'<img src="{src}" alt="Photo from the scene" width=640 height=480>'
        return f'<video controls preload="metadata" src="{src}" width=320 height=240></video>'

    def video_page(self, name: str) -> bytes:
        text = TEXT["video"].format(n=sum(map(ord, name)))
        return doc(
            f"Video {name}",
            f"<article><h1>Scenes at the gate</h1><p>{text}</p>{self.element(name)}</article>",
        )

    def hls_page(self) -> bytes:
        slot = self.slots["stream"]
        player = ""
        if slot.shown:
            # A script player as hls.js is one: it fetches the playlist and a segment itself
            # and feeds the <video> through Media Source Extensions (its src is a blob: URL).
            src = json.dumps(self.media_url("stream", token=True))
            player = (
                "<div class=player><video id=v controls width=320 height=240></video></div>"
                f"<script>const src = {src};"
                "fetch(src).then(r => r.text()).then(t => {"
                "const first = t.split('\\n').find(l => l.endsWith('.ts'));"
                "if (first) fetch(new URL(first, src));"
                "document.getElementById('v').src = URL.createObjectURL(new MediaSource());"
                "});</script>"
            )
        return doc(
            "Live from the gate", f"<article><h1>Recorded stream</h1><p>{TEXT['hls']}</p>{player}"
        )

    def cnn_page(self) -> bytes:
        slot = self.slots["cnn"]
        head = ""
        if slot.shown:
            ld = {
                "@context": "https://schema.org",
                "@type": "NewsArticle",
                "headline": "Explosions near Kabul airport",
                "video": {
                    "@type": "VideoObject",
                    "name": "Second explosion near the Baron hotel",
                    "description": "Footage of the second blast.",
                    "contentUrl": self.media_url("cnn", token=True),
                    "thumbnailUrl": self.url("/media/thumb.jpg"),
                    "duration": "PT3S",
                    "uploadDate": "2026-11-27T08:00:00Z",
                },
            }
            head = f"<script type='application/ld+json'>{json.dumps(ld)}</script>"
        rail = "".join(
            f"<li><a href='/video-related{n}.html'><img src='/media/thumb.jpg' width=80 alt=''>"
            f"Related video {n}</a><video muted preload=metadata width=80 "
            f"src='/media/related-{n}.mp4'></video></li>"
            for n in (1, 2)
        )
        # CNN's player is a script that builds the <video> on click: the JSON-LD names it.
        player = "<div class=media__video><img src='/media/thumb.jpg' alt='Play'></div>"
        return doc(
            "Explosions near Kabul airport - CNN Video",
            f"<article><h1>Explosions near Kabul airport</h1>{player if slot.shown else ''}"
            f"<p>{TEXT['cnn']}</p></article>"
            f"<aside class=related><h2>Related videos</h2><ul>{rail}</ul></aside>",
            head,
        )

    def tweet_page(self) -> bytes:
        photo = self.slots["tweetphoto"]
        head = ""
        if photo.shown:
            head = f"<meta property='og:image' content='{self.media_url('tweetphoto', True)}'>"
        return doc(
            "Reporter on X",
            f"<article data-testid=tweet><div data-testid=tweetText>{TEXT['tweet']}</div>"
            f"<div data-testid=tweetPhoto>{self.element('tweetphoto', 'img')}</div>"
            f"<div data-testid=videoPlayer>{self.element('tweetvideo')}</div></article>",
            head,
        )

    def ad_page(self) -> bytes:
        advert = (
            "<div class='ad advert' id=ad-slot-1><span>Advertisement</span><video autoplay muted "
            "loop playsinline width=300 src='/ads/ad.mp4?cb=81723'></video></div>"
        )
        return doc(
            "Statement",
            f"{advert}<article><h1>The statement</h1><p>{TEXT['ad']}</p>"
            f"{self.element('adpage')}</article>",
        )


def doc(title: str, body: str, head: str = "") -> bytes:
    return (
        f"<!DOCTYPE html><html><head><meta charset=utf-8><title>{title}</title>{head}</head>"
        f"<body>{body}</body></html>"
    ).encode()
