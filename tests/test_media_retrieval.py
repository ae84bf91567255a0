"""Retrieving preserved media: ``get --artifact media``, ``history --json``, the web UI's
player (range requests, headers, real Chromium playing the clip), the WACZ export and the
citation report.

The captures are written the way crawler/archiving.py stores them (blobs, a media WARC
built with warcio, then the manifest and its index row), with clips made by ffmpeg here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from cliutil import run_cli, write_config
from tools import tool, wayback
from warcio.archiveiterator import ArchiveIterator
from webserver import Served

from crawler.app import App
from crawler.config import load_config
from crawler.errors import IntegrityError
from crawler.importer import import_document
from crawler.readers import read_document
from storage import archive as archive_module
from storage.archive import Archive
from storage.ids import new_capture_id, source_id
from storage.spool import open_spooling
from storage.warc import Exchange, Resource, build_warc

CHROMIUM = "/usr/bin/chromium"
VIDEO_PAGE = "https://news.example/video/1"
PLAIN_PAGE = "https://news.example/plain"
REMOVED_PAGE = "https://news.example/video/removed"
BIG_PAGE = "https://news.example/video/big"
GONE_PAGE = "https://x.example/someone/status/1"
CLIP_URL = "https://cdn.news.example/v/clip.mp4"
WEBM_URL = "https://cdn.news.example/v/clip.webm"
PHOTO_URL = "https://cdn.news.example/p/photo.png"
DOCUMENT = f"""# Notes on the closure

The anchor said "the gate will stay closed for the whole week" in [the video]({VIDEO_PAGE}).
See also [the plain page]({PLAIN_PAGE}), [the removed video]({REMOVED_PAGE}) and
[the long video]({BIG_PAGE}), and [a deleted post]({GONE_PAGE}).
"""
HOSTILE = b"<html><script>document.cookie='pwned=1'</script></html>"
T1, T2, T3 = "2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z", "2026-11-03T10:00:00Z"


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return float(out.strip())


@dataclass
class Clips:
    mp4: bytes
    webm: bytes
    poster: bytes
    duration: float


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Clips:
    """A 3 s H.264/AAC clip, the same as VP9/Opus WebM, and a PNG poster frame."""
    tmp = tmp_path_factory.mktemp("clips")
    sources = ["-f", "lavfi", "-i", "testsrc=duration=3:size=320x240:rate=25"]
    sources += ["-f", "lavfi", "-i", "sine=duration=3"]
    mp4, webm, png = tmp / "clip.mp4", tmp / "clip.webm", tmp / "poster.png"
    _ffmpeg(
        *sources, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(mp4)
    )
    _ffmpeg(
        *sources,
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-c:a",
        "libopus",
        "-shortest",
        str(webm),
    )
    _ffmpeg("-i", str(mp4), "-frames:v", "1", str(png))
    return Clips(mp4.read_bytes(), webm.read_bytes(), png.read_bytes(), ffprobe_duration(mp4))


class Captures:
    """Writes captures with media into a real archive and index, as store_capture does."""

    def __init__(self, app: App, clips: Clips) -> None:
        self.app = app
        self.clips = clips

    def _ref(self, data: bytes, media_type: str) -> dict:
        ref = self.app.archive.put_blob(data)
        return {"sha256": ref.sha256, "size": ref.size, "media_type": media_type}

    def media(
        self, url: str, data: bytes, media_type: str, kind: str, at: str, duration=None
    ) -> dict:
        """A preserved entry: the bytes, a poster, and a WARC of the exchange that fetched it."""
        headers = [("Content-Type", media_type), ("Content-Length", str(len(data)))]
        warc = build_warc(
            [Exchange(url, status=200, response_headers=headers, body=data, started_at=at)],
            [],
            captured_at=at,
            page_url=url,
        )
        return {
            "kind": kind,
            "found_by": "html5",
            "url": url,
            "status": "preserved",
            "reason": None,
            **self._ref(data, media_type),
            "probe": {"duration": duration, "width": 320, "height": 240},
            "info": {"title": "clip", "upload_date": None},
            "frames": [],
            "poster": self._ref(self.clips.poster, "image/png") if kind == "video" else None,
            "warc": self._ref(warc, "application/warc"),
            "validators": {"etag": None, "last_modified": None, "manifest_sha256": None},
        }

    def capture(
        self,
        page: str,
        at: str,
        media: list[dict],
        verdict: str = "new",
        reason=None,
        rendering: dict | None = None,
    ) -> str:
        """Blobs, then the manifest, then the index row; returns the capture id."""
        dom = f"<html><head><title>Video at {page}</title></head><body>ok</body></html>".encode()
        text = f"Video at {page}".encode()
        warc = build_warc(
            [Exchange(page, status=200, response_headers=[("Content-Type", "text/html")],
                      body=dom, started_at=at)],
            [Resource(f"urn:dom:{page}", "text/html", dom)],
            captured_at=at,
            page_url=page,
        )  # fmt: skip
        manifest = {
            "schema": 1,
            "id": new_capture_id(),
            "source_id": source_id(page),
            "url": page,
            "captured_at": at,
            "final_url": page,
            "http_status": 200,
            "headers": [["Content-Type", "text/html"]],
            "redirect_chain": [],
            "media_type": "text/html",
            "verdict": verdict,
            "reason": reason,
            "error": None,
            "artifacts": {
                "dom": self._ref(dom, "text/html; charset=utf-8"),
                "text": self._ref(text, "text/plain; charset=utf-8"),
                "screenshot": self._ref(self.clips.poster, "image/png"),
                "warc": self._ref(warc, "application/warc"),
            },
            "fingerprints": {"text_sha256": hashlib.sha256(text).hexdigest()},
            "media": media,
        }
        if rendering is not None:
            manifest["rendering"] = rendering
        stored = self.app.archive.write_manifest(manifest)
        self.app.index.record_capture(stored)
        return manifest["id"]


@dataclass
class World:
    config: Path
    document: Path
    ids: dict[str, str]
    clip_entry: dict


@pytest.fixture(scope="module")
def world(tmp_path_factory, clips: Clips) -> World:
    """Four cited sources: a video page captured twice (the second reuses the download), a
    page without media, a page whose video was removed, and one whose video was skipped."""
    tmp = tmp_path_factory.mktemp("media")
    config = write_config(tmp / "c.toml", (tmp / "store").as_uri())
    document = tmp / "notes.md"
    document.write_text(DOCUMENT)
    app = App.open(load_config(config))
    try:
        parsed = read_document(document)
        import_document(app.archive, app.index, parsed, str(document.resolve()), app.canonical)
        make = Captures(app, clips)
        clip = make.media(CLIP_URL, clips.mp4, "video/mp4", "video", T1, clips.duration)
        webm = make.media(WEBM_URL, clips.webm, "video/webm", "video", T1, clips.duration)
        photo = make.media(PHOTO_URL, clips.poster, "image/png", "image", T1)
        hostile = make.media(
            "https://cdn.news.example/x.html", HOSTILE, "text/html", "document", T1
        )
        skipped = {"kind": "video", "found_by": "jsonld", "url": "https://cdn.news.example/v/long.mp4",
                   "status": "skipped", "reason": "over the 500 MB cap"}  # fmt: skip
        ids = {
            "first": make.capture(VIDEO_PAGE, T1, [clip, photo, skipped, hostile, webm]),
            "reused": make.capture(
                VIDEO_PAGE,
                T2,
                [{**clip, "status": "reused", "same_as": "first"}, photo],
                verdict="unchanged",
            ),
            "plain": make.capture(PLAIN_PAGE, T1, [], rendering={"media": 0}),
            "removed_before": make.capture(REMOVED_PAGE, T1, [clip]),
            "removed_after": make.capture(
                REMOVED_PAGE, T2, [], verdict="changed", reason="video removed: not on the page"
            ),
            "big": make.capture(BIG_PAGE, T1, [skipped]),
            "gone_before": make.capture(GONE_PAGE, T1, [clip]),
            "gone_after": make.capture(GONE_PAGE, T2, [], verdict="gone", reason="HTTP 404"),
            "gone_again": make.capture(GONE_PAGE, T3, [], verdict="gone", reason="HTTP 404"),
        }
    finally:
        app.close()
    return World(config, document, ids, clip)


# get --artifact media


def test_get_media_writes_the_preserved_clip_and_photo(world, clips, tmp_path):
    out = tmp_path / "got.mp4"
    res = run_cli(world.config, "get", VIDEO_PAGE, "--artifact", "media", "-o", str(out))
    assert res.code == 0, res.err
    # The latest capture reused the first one's download: same bytes, same playable clip.
    assert out.read_bytes() == clips.mp4
    assert abs(ffprobe_duration(out) - 3.0) < 0.1
    photo = tmp_path / "photo.png"
    res = run_cli(
        world.config, "get", VIDEO_PAGE, "--artifact", "media", "--index", "2",
        "--at", T1, "-o", str(photo),
    )  # fmt: skip
    assert res.code == 0, res.err
    assert photo.read_bytes() == clips.poster


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--at", T1, "--index", "3"], 3, ["media 3 of capture", "skipped", "over the 500 MB cap"]),
        (["--index", "9"], 3, ["has 2 media item(s)", "--index 9 is out of range"]),
        (["--index", "0"], 2, ["--index"]),
    ],
)
def test_get_media_errors_name_the_problem(world, tmp_path, args, code, words):
    out = tmp_path / "never"
    res = run_cli(world.config, "get", VIDEO_PAGE, "--artifact", "media", *args, "-o", str(out))
    assert res.code == code, res.err
    line = res.err.strip()
    assert "\n" not in line and all(w in line for w in words), line
    assert not out.exists()


def test_get_media_of_a_page_without_media_or_with_the_wrong_artifact(world):
    res = run_cli(world.config, "get", PLAIN_PAGE, "--artifact", "media")
    assert res.code == 3 and "no capture with media" in res.err, res.err
    res = run_cli(world.config, "get", VIDEO_PAGE, "--artifact", "dom", "--index", "2")
    assert res.code == 2 and "--artifact media" in res.err, res.err


# history


def test_history_lists_each_captures_media(world, clips):
    res = run_cli(world.config, "history", VIDEO_PAGE, "--json")
    assert res.code == 0, res.err
    first, reused = json.loads(res.out)
    assert [m["status"] for m in first["media"]] == [
        "preserved", "preserved", "skipped", "preserved", "preserved",
    ]  # fmt: skip
    video = first["media"][0]
    assert video == {
        "kind": "video",
        "url": CLIP_URL,
        "status": "preserved",
        "reason": None,
        "sha256": hashlib.sha256(clips.mp4).hexdigest(),
        "size": len(clips.mp4),
        "duration": clips.duration,
        "media_type": "video/mp4",
    }
    assert first["media"][2]["reason"] == "over the 500 MB cap"
    assert first["media"][2]["sha256"] is None
    assert reused["media"][0]["status"] == "reused" and reused["media"][0]["same_as"] == "first"
    plain = run_cli(world.config, "history", VIDEO_PAGE)
    assert plain.code == 0, plain.err
    assert f"media 1: video preserved (sha256 {video['sha256'][:12]}…, 0:03)" in plain.out
    assert "media 3: video not preserved (skipped): over the 500 MB cap" in plain.out


def test_a_capture_the_index_says_has_no_media_costs_no_manifest_read(world, monkeypatch):
    from crawler.media_get import media_of

    app = App.open(load_config(world.config))
    try:
        plain = app.index.get_capture(world.ids["plain"])
        first = app.index.get_capture(world.ids["first"])
        read = []
        real = app.archive.read_manifest
        monkeypatch.setattr(app.archive, "read_manifest", lambda k: read.append(k) or real(k))
        assert media_of(app, plain) == [] and read == []
        assert len(media_of(app, first)) == 5 and read == [first.manifest_key]
    finally:
        app.close()


# Ranged reads in the stores


class _NoRanges:
    """A store offering only the ObjectStore protocol: the archive must fall back."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.url = inner.url

    def __getattr__(self, name):
        if name == "get_range":
            raise AttributeError(name)
        return getattr(self.inner, name)


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_ranged_reads_in_local_and_s3_stores(backend, request, tmp_path, monkeypatch):
    if backend == "file":
        url = (tmp_path / "store").as_uri()
    else:
        url = f"s3://{request.getfixturevalue('s3_bucket')}/archive"
    store = open_spooling(
        url, tmp_path / "spool", retry_seconds=5, connect_timeout=5, read_timeout=10
    )
    data = os.urandom(10_000)
    archive = Archive(store)
    sha = archive.put_blob(data).sha256
    monkeypatch.setattr(archive_module, "RANGE_CHUNK", 4096)
    fetched = []
    get = store.get
    monkeypatch.setattr(store, "get", lambda key: fetched.append(key) or get(key))
    chunks = list(archive.iter_blob_range(sha, 100, 9_000))
    assert b"".join(chunks) == data[100:9_100]
    assert [len(c) for c in chunks] == [4096, 4096, 808]
    assert fetched == []  # only ranged reads: the whole blob was never loaded
    with pytest.raises(IntegrityError, match="shorter"):
        list(archive.iter_blob_range(sha, 9_000, 2_000))
    fallback = Archive(_NoRanges(store))
    assert b"".join(fallback.iter_blob_range(sha, 5, 10)) == data[5:15]
    assert fetched  # the fallback read (and verified) the whole blob


# The web UI


@pytest.fixture(scope="module")
def served(world) -> Served:
    from crawler.web import create_app

    server = Served(create_app(load_config(world.config)))
    yield server
    server.close()


def _get(url: str, headers: dict | None = None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_media_route_answers_ranges(world, served, clips):
    url = f"{served.base}/captures/{world.ids['first']}/media/1"
    size, sha = len(clips.mp4), hashlib.sha256(clips.mp4).hexdigest()
    status, headers, body = _get(url)
    assert status == 200 and body == clips.mp4
    assert headers["Content-Type"] == "video/mp4" and headers["Accept-Ranges"] == "bytes"
    assert headers["ETag"] == f'"{sha}"'
    assert headers["Content-Security-Policy"].startswith("sandbox")
    assert headers["X-Content-Type-Options"] == "nosniff"
    for asked, first, last in [("100-1099", 100, 1099), ("-500", size - 500, size - 1),
                               (f"{size - 10}-", size - 10, size - 1), ("0-", 0, size - 1),
                               (f"5-{size + 99}", 5, size - 1)]:  # fmt: skip
        status, headers, body = _get(url, {"Range": f"bytes={asked}"})
        assert status == 206, asked
        assert body == clips.mp4[first : last + 1], asked
        assert headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert int(headers["Content-Length"]) == last - first + 1
        assert headers["Content-Type"] == "video/mp4"
        assert headers["Content-Security-Policy"].startswith("sandbox")
    for bad in (f"bytes={size}-", "bytes=500-100", "bytes=abc", "bytes=-0"):
        status, headers, _ = _get(url, {"Range": bad})
        assert status == 416, bad
        assert headers["Content-Range"] == f"bytes */{size}"
    status, _, body = _get(url, {"Range": "bytes=0-1", "If-Range": '"another"'})
    assert status == 200 and body == clips.mp4
    status, _, body = _get(url, {"If-None-Match": f'"{sha}"'})
    assert status == 304 and body == b""


def test_media_route_types_and_refusals(world, served, clips):
    base = f"{served.base}/captures/{world.ids['first']}/media"
    status, headers, body = _get(f"{base}/2")
    assert status == 200 and headers["Content-Type"] == "image/png" and body == clips.poster
    # Archived HTML is never served as HTML, whatever the manifest says it is.
    status, headers, body = _get(f"{base}/4", {"Range": "bytes=0-"})
    assert status == 206 and body == HOSTILE
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith("attachment")
    assert headers["Content-Security-Policy"].startswith("sandbox")
    status, _, body = _get(f"{base}/3")
    assert status == 404 and b"over the 500 MB cap" in body
    assert _get(f"{base}/6")[0] == 404
    assert _get(f"{served.base}/captures/{world.ids['plain']}/media/1")[0] == 404


def test_capture_page_shows_players_next_to_the_screenshot(world, served):
    status, headers, body = _get(f"{served.base}/captures/{world.ids['first']}")
    page = body.decode()
    assert status == 200
    assert "media-src 'self'" in headers["Content-Security-Policy"]
    first = world.ids["first"]
    assert (
        f'<video controls preload="metadata" src="/captures/{first}/media/1" poster="/blobs/'
        in page
    )
    assert (
        f'<img class="shot" alt="image 2 of capture {first}" src="/captures/{first}/media/2">'
        in page
    )
    assert "over the 500 MB cap" in page
    assert f'<a href="/captures/{first}/media/4">download document 4</a>' in page
    assert page.index("Screenshot") < page.index('id="media"')


@pytest.fixture(scope="module")
def chromium():
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: the browser test needs it"
    from playwright.sync_api import sync_playwright

    from crawler.runner import CHROMIUM_ARGS

    args = [*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


@pytest.mark.browser
@pytest.mark.parametrize("n, codec", [(1, "h264"), (5, "vp9")])
def test_chromium_plays_the_preserved_clip(world, served, chromium, n, codec):
    page = chromium.new_page()
    ranged = []
    page.on(
        "response",
        lambda r: ranged.append(r.status) if f"/media/{n}" in r.url else None,
    )
    try:
        page.goto(f"{served.base}/captures/{world.ids['first']}")
        video = page.locator(f"#media-{n} video")
        video.evaluate("v => v.play()")
        # A function, not a string: the UI's CSP forbids eval, and must stay in force here.
        page.wait_for_function(
            "v => v.currentTime > 1.0", arg=video.element_handle(), timeout=20_000
        )
        state = video.evaluate("v => [v.error, v.paused, v.duration]")
    finally:
        page.close()
    assert state[0] is None and state[1] is False and abs(state[2] - 3.0) < 0.1, (codec, state)
    assert 206 in ranged, ranged


# WACZ


def test_wacz_holds_each_media_warc_once_and_validates(world, tmp_path):
    out = tmp_path / "media.wacz"
    res = run_cli(world.config, "export", "--wacz", str(out), VIDEO_PAGE, REMOVED_PAGE)
    assert res.code == 0, res.err
    check = subprocess.run(
        [str(tool("wacz")), "validate", "--file", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    with zipfile.ZipFile(out) as zf:
        cdxj = zf.read("indexes/index.cdxj").decode().splitlines()
        targets = []
        for name in zf.namelist():
            if name.startswith("archive/"):
                for record in ArchiveIterator(io.BytesIO(zf.read(name))):
                    if record.rec_type == "response":
                        targets.append(record.rec_headers.get_header("WARC-Target-URI"))
    entries = [json.loads(line.split(" ", 2)[2]) for line in cdxj]
    clip = [e for e in entries if e["url"] == CLIP_URL]
    assert len(clip) == 1 and clip[0]["mime"] == "video/mp4" and clip[0]["status"] == "200"
    # Three captures (two sources) name the same media WARC: it is in the package once.
    assert targets.count(CLIP_URL) == 1
    assert {PHOTO_URL, WEBM_URL, VIDEO_PAGE, REMOVED_PAGE} <= set(targets)


def test_pywb_replays_the_clip_from_the_wacz_warcs(world, clips, tmp_path):
    out = tmp_path / "media.wacz"
    assert run_cli(world.config, "export", "--wacz", str(out), VIDEO_PAGE).code == 0
    root = tmp_path / "pywb"
    root.mkdir()
    with zipfile.ZipFile(out) as zf:
        warcs = [n for n in zf.namelist() if n.startswith("archive/")]
        zf.extractall(root, warcs)
    for args in (["init", "coll"], ["add", "coll", *[str(root / n) for n in warcs]]):
        proc = subprocess.run(
            [str(tool("wb-manager")), *args], cwd=root, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    with wayback(root) as port:
        replay = f"http://127.0.0.1:{port}/coll/20261101100000id_/{CLIP_URL}"
        with urllib.request.urlopen(replay, timeout=30) as resp:
            assert resp.status == 200 and resp.read() == clips.mp4


# Report


def test_report_says_whether_each_video_is_preserved(world, clips):
    from crawler.report import build_report, to_markdown

    app = App.open(load_config(world.config))
    try:
        report = build_report(app, str(world.document))
    finally:
        app.close()
    media = {c["canonical_url"]: c["media"] for c in report["citations"]}
    sha = hashlib.sha256(clips.mp4).hexdigest()
    assert media == {
        VIDEO_PAGE: f"video preserved (sha256 {sha[:12]}…, 0:03)",
        PLAIN_PAGE: None,
        REMOVED_PAGE: (
            f"video removed since {T2[:10]}; preserved copy from capture "
            f"{world.ids['removed_before']}"
        ),
        BIG_PAGE: "video not preserved: over the 500 MB cap",
        GONE_PAGE: (
            f"video removed since {T2[:10]}; preserved copy from capture "
            f"{world.ids['gone_before']} (page gone)"
        ),
    }
    text = to_markdown(report)
    assert f"- media: video preserved (sha256 {sha[:12]}…, 0:03)" in text
