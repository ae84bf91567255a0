"""The media of cited pages, end to end through the command line with real Chromium and yt-dlp.

One store, the media site's pages as sources, three runs (tests/media_site.py):

1. everything new: the right media found on each page (ads, related rails, thumbnails
   ignored), downloaded, probed, hashed; a media URL that redirects to another loopback
   port is refused (the config allows only the site's own endpoint) and that port sees
   no connection;
2. the site changes under the same page URLs: rotated token -> unchanged, nothing fetched
   again; re-encoded clip -> unchanged; another clip -> changed "video replaced"; video
   element gone -> changed "video removed"; media URL 404 -> changed "video removed"; tweet
   photo gone -> changed "photo removed"; oversize file -> media skipped with its reason,
   page not changed;
3. the HLS playlist now 404s -> changed "video removed"; nothing else changed, and no
   media body is downloaded again.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from clips import Clips, duration, make_clips
from cliutil import history, run_cli, write_config
from media_site import MediaSite
from tools import tool
from warcio.archiveiterator import ArchiveIterator

pytestmark = pytest.mark.browser

MAX_MB = 1.0  # clips.big (about 2.6 MB) is over it, every other file far under it
HEX16 = set("0123456789abcdef")


class Elsewhere(ThreadingHTTPServer):
    """Another loopback port that a media URL redirects to: counts every connection."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Secret)
        self.connections = 0
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        self.connections += 1
        super().process_request(request, client_address)


class _Secret(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", "11")
        self.end_headers()
        self.wfile.write(b"SECRET-5150")

    def log_message(self, *args: object) -> None:
        pass


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def blob(store: Path, sha: str) -> bytes:
    data = (store / "blobs" / "sha256" / sha[:2] / sha[2:4] / sha).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha
    return data


def new_manifests(store: Path, seen: set[Path]) -> dict[str, dict]:
    """The manifests written since ``seen`` (which is updated), by source URL."""
    found: dict[str, dict] = {}
    for path in sorted((store / "captures").glob("*/*.json")):
        if path not in seen:
            seen.add(path)
            manifest = json.loads(path.read_bytes())
            assert manifest["url"] not in found, manifest["url"]
            found[manifest["url"]] = manifest
    return found


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return make_clips(tmp_path_factory.getbasetemp() / "clips")


@pytest.fixture(scope="module")
def runs(clips: Clips, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("media")
    site, elsewhere = MediaSite(clips), Elsewhere()
    pages = {
        "video": site.url("/video.html"),  # slot "clip": its token rotates in run 2
        "reenc": site.add_video("reenc", clips.clip_a),
        "other": site.add_video("other", clips.clip_a),
        "removed": site.add_video("removed", clips.clip_a),
        "gone": site.add_video("gone", clips.clip_a),
        "big": site.add_video("big", clips.clip_a),
        "redir": site.add_video("redir", clips.clip_a),
        "hls": site.url("/hls.html"),
        "cnn": site.url("/cnn-video.html"),
        "tweet": site.url("/tweet.html"),
        "ad": site.url("/ad.html"),
        "plain": site.url("/plain.html"),
    }
    site.slots["redir"].redirect = f"http://127.0.0.1:{elsewhere.server_port}/media/clip.mp4"
    store = tmp / "store"
    # The default destination policy, with exactly the site's endpoint allowed.
    config = write_config(
        tmp / "c.toml",
        store.as_uri(),
        allow_private=False,
        page_timeout=20,
        crawl_extra=f'allow_hosts = ["127.0.0.1:{site.port}"]',
        extra=f"\n[media]\nmax_mb = {MAX_MB}\ntimeout_s = 60\n",
    )
    assert run_cli(config, "add", *pages.values()).code == 0
    seen: set[Path] = set()
    marks, captures = [], []

    def run() -> None:
        marks.append(site.mark())
        res = run_cli(config, "run-once", "--all")
        assert res.code == 0, res.err[-3000:]
        captures.append(new_manifests(store, seen))
        assert set(captures[-1]) == set(pages.values())

    try:
        run()
        site.slots["clip"].token += 1
        site.slots["stream"].token += 1
        site.slots["reenc"].file = clips.clip_a_reencoded
        site.slots["other"].file = clips.clip_b
        site.slots["removed"].shown = False
        site.slots["gone"].file = None
        site.slots["big"].file = clips.big
        site.slots["tweetphoto"].shown = False
        run()
        site.slots["stream"].file = None
        run()
        yield {
            "site": site,
            "pages": pages,
            "config": config,
            "store": store,
            "tmp": tmp,
            "marks": marks,
            "captures": captures,
            "elsewhere": elsewhere,
        }
    finally:
        site.stop()
        elsewhere.shutdown()
        elsewhere.server_close()


def media_of(runs: dict, run: int, page: str) -> list[dict]:
    return runs["captures"][run][runs["pages"][page]].get("media") or []


def assert_preserved(runs: dict, entry: dict, file: Path, seconds: float) -> None:
    """A kept entry: the served bytes in the store, probed, hashed, with a PNG poster."""
    assert entry["status"] == "preserved", entry
    assert entry["sha256"] == sha256(file) and entry["size"] == file.stat().st_size
    assert blob(runs["store"], entry["sha256"]) == file.read_bytes()
    assert entry["media_type"] == "video/mp4"
    probe = entry["probe"]
    assert abs(probe["duration"] - seconds) < 0.1, probe
    assert (probe["width"], probe["height"]) == (320, 240)
    assert (probe["video_codec"], probe["audio_codec"]) == ("h264", "aac")
    assert entry["frames"] and all(len(f) == 16 and set(f) <= HEX16 for f in entry["frames"])
    poster = entry["poster"]
    assert blob(runs["store"], poster["sha256"]).startswith(b"\x89PNG\r\n\x1a\n")


# ---- run 1: what is found on each page --------------------------------------------------


def test_video_element_found_without_its_token_and_preserved(runs) -> None:
    site, clips = runs["site"], runs["site"].clips
    [entry] = media_of(runs, 0, "video")
    assert (entry["kind"], entry["found_by"]) == ("video", "html5")
    assert entry["url"] == site.media_url("clip") and "token" not in entry["url"]
    assert_preserved(runs, entry, clips.clip_a, 3.0)
    assert runs["captures"][0][runs["pages"]["video"]]["verdict"] == "new"


def test_hls_loaded_by_script_found_in_traffic_and_merged(runs) -> None:
    site = runs["site"]
    [entry] = media_of(runs, 0, "hls")
    assert (entry["kind"], entry["found_by"]) == ("video", "hls")
    assert entry["url"] == site.media_url("stream")
    assert entry["status"] == "preserved", entry
    assert abs(entry["probe"]["duration"] - 3.0) < 0.2, entry["probe"]
    assert entry["probe"]["video_codec"] == "h264"
    # the player fetched the playlist; the downloader fetched every segment
    for n in range(3):
        assert site.downloads(f"/media/stream/seg{n}.ts", runs["marks"][0]), n


def test_cnn_video_from_jsonld_related_rail_ignored(runs) -> None:
    site = runs["site"]
    [entry] = media_of(runs, 0, "cnn")
    assert (entry["kind"], entry["found_by"], entry["url"]) == (
        "video",
        "jsonld",
        site.media_url("cnn"),
    )
    assert_preserved(runs, entry, site.clips.clip_a, 3.0)
    assert entry["info"]["title"]
    # the rail's videos were shown to the browser, never downloaded
    for n in (1, 2):
        assert site.hits(f"/media/related-{n}.mp4") and not site.downloads(
            f"/media/related-{n}.mp4"
        )


def test_tweet_photo_and_video_found(runs) -> None:
    site, clips = runs["site"], runs["site"].clips
    media = {e["kind"]: e for e in media_of(runs, 0, "tweet")}
    assert len(media_of(runs, 0, "tweet")) == 2 and set(media) == {"image", "video"}
    photo, video = media["image"], media["video"]
    assert photo["url"] == site.media_url("tweetphoto") and photo["status"] == "preserved"
    assert photo["sha256"] == sha256(clips.photo) and photo["media_type"] == "image/jpeg"
    assert video["url"] == site.media_url("tweetvideo")
    assert_preserved(runs, video, clips.clip_b, 3.0)


def test_ad_video_ignored(runs) -> None:
    site = runs["site"]
    [entry] = media_of(runs, 0, "ad")
    assert entry["url"] == site.media_url("adpage")
    assert_preserved(runs, entry, site.clips.clip_a, 3.0)
    assert not site.downloads("/ads/ad.mp4")


def test_page_without_media_has_no_entries(runs) -> None:
    for n in range(3):
        assert media_of(runs, n, "plain") == []


def test_redirect_to_other_loopback_port_refused(runs) -> None:
    [entry] = media_of(runs, 0, "redir")
    assert entry["url"] == runs["site"].media_url("redir")
    assert entry["status"] == "failed" and "sha256" not in entry, entry
    assert "not a public address" in entry["reason"], entry["reason"]
    assert runs["elsewhere"].connections == 0
    capture = runs["captures"][0][runs["pages"]["redir"]]
    assert capture["verdict"] == "new" and capture["http_status"] == 200


# ---- runs 2 and 3: the site changed ------------------------------------------------------

EXPECTED = {  # page -> (verdict of run 2, words of its reason)
    "video": ("unchanged", None),
    "reenc": ("unchanged", None),
    "other": ("changed", "video replaced"),
    "removed": ("changed", "video removed"),
    "gone": ("changed", "video removed"),
    "big": ("unchanged", None),
    "hls": ("unchanged", None),
    "cnn": ("unchanged", None),
    "tweet": ("changed", "photo removed"),
    "ad": ("unchanged", None),
    "plain": ("unchanged", None),
}


@pytest.mark.parametrize("page", list(EXPECTED))
def test_verdict_after_the_site_changed(runs, page) -> None:
    capture = runs["captures"][1][runs["pages"][page]]
    verdict, words = EXPECTED[page]
    assert capture["verdict"] == verdict, (capture["verdict"], capture.get("reason"))
    if words is not None:
        assert words in capture["reason"], capture["reason"]


def test_rotated_token_reused_without_downloading_again(runs) -> None:
    site = runs["site"]
    first, [entry] = media_of(runs, 0, "video")[0], media_of(runs, 1, "video")
    assert entry["url"] == first["url"]  # the token is not part of the media's identity
    assert entry["status"] == "reused" and entry["sha256"] == first["sha256"], entry
    assert entry["same_as"] == runs["captures"][0][runs["pages"]["video"]]["id"]
    first_run = site.downloads("/media/clip.mp4", runs["marks"][0], runs["marks"][1])
    assert first_run  # the downloader's requests are told apart from the browser's
    assert not site.downloads("/media/clip.mp4", runs["marks"][1])


def test_reencoded_clip_kept_as_new_bytes_of_the_same_video(runs) -> None:
    [entry] = media_of(runs, 1, "reenc")
    assert_preserved(runs, entry, runs["site"].clips.clip_a_reencoded, 3.0)
    assert entry["frames"] != [] and entry["sha256"] != media_of(runs, 0, "reenc")[0]["sha256"]


def test_oversize_file_skipped_with_reason_page_captured(runs) -> None:
    capture = runs["captures"][1][runs["pages"]["big"]]
    assert capture["http_status"] == 200 and "raw" in capture["artifacts"]
    [entry] = media_of(runs, 1, "big")
    assert entry["status"] == "skipped" and "sha256" not in entry, entry
    assert "cap" in entry["reason"], entry["reason"]
    big = runs["site"].clips.big.read_bytes()
    assert not list(runs["store"].glob(f"blobs/sha256/*/*/{hashlib.sha256(big).hexdigest()}"))


def test_media_url_404_recorded_as_gone(runs) -> None:
    [entry] = media_of(runs, 1, "gone")
    assert entry["status"] == "gone" and "404" in entry["reason"], entry


def test_hls_playlist_404_is_video_removed(runs) -> None:
    capture = runs["captures"][2][runs["pages"]["hls"]]
    assert capture["verdict"] == "changed" and "video removed" in capture["reason"], capture


def test_unchanged_recheck_downloads_no_media_again(runs) -> None:
    site, since = runs["site"], runs["marks"][2]
    for page in ("video", "reenc", "other", "cnn", "ad"):
        assert runs["captures"][2][runs["pages"][page]]["verdict"] == "unchanged", page
    for slot in ("clip", "reenc", "other", "cnn", "adpage", "tweetvideo"):
        assert not site.downloads(site.media_path(slot), since), slot
        [entry] = [
            e
            for p in runs["pages"]
            for e in media_of(runs, 2, p)
            if e["url"] == site.media_url(slot)
        ]
        assert entry["status"] == "reused", (slot, entry)


# ---- retrieval ---------------------------------------------------------------------------


def test_history_lists_each_captures_media(runs) -> None:
    caps = history(runs["config"], runs["pages"]["video"])
    assert [c["verdict"] for c in caps] == ["new", "unchanged", "unchanged"]
    sha = sha256(runs["site"].clips.clip_a)
    for cap in caps:
        [media] = cap["media"]
        assert media["url"] == runs["site"].media_url("clip") and media["sha256"] == sha
        assert media["size"] == runs["site"].clips.clip_a.stat().st_size
        assert abs(media["duration"] - 3.0) < 0.1


def test_media_warc_records_the_exact_fetched_url(runs) -> None:
    site, store = runs["site"], runs["store"]
    [entry] = media_of(runs, 0, "video")
    records = ArchiveIterator(io.BytesIO(blob(store, entry["warc"]["sha256"])))
    responses = {
        r.rec_headers.get_header("WARC-Target-URI"): (
            r.http_headers.get_statuscode(),
            r.content_stream().read(),
        )
        for r in records
        if r.rec_type == "response"
    }
    # the URL as fetched in run 1, token and all; the body is the served file
    fetched = site.media_url("clip") + "?token=T0x"
    assert responses[fetched] == ("200", site.clips.clip_a.read_bytes())
    [hls] = media_of(runs, 0, "hls")
    records = ArchiveIterator(io.BytesIO(blob(store, hls["warc"]["sha256"])))
    targets = {r.rec_headers.get_header("WARC-Target-URI") for r in records}
    assert {site.url(f"/media/stream/seg{n}.ts") for n in range(3)} <= targets


def test_wacz_of_real_media_captures_validates(runs) -> None:
    out = runs["tmp"] / "media.wacz"
    pages = [runs["pages"][p] for p in ("video", "hls", "tweet")]
    res = run_cli(runs["config"], "export", "--wacz", str(out), *pages)
    assert res.code == 0, res.err
    check = subprocess.run(
        [str(tool("wacz")), "validate", "--file", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    with zipfile.ZipFile(out) as zf:
        cdxj = zf.read("indexes/index.cdxj").decode()
    for slot in ("clip", "tweetvideo", "tweetphoto"):
        assert runs["site"].media_path(slot) in cdxj, slot


def test_get_media_writes_a_playable_file_of_the_right_duration(runs) -> None:
    out = runs["tmp"] / "got.mp4"
    res = run_cli(
        runs["config"], "get", runs["pages"]["other"], "--artifact", "media", "-o", str(out)
    )
    assert res.code == 0, res.err
    assert out.read_bytes() == runs["site"].clips.clip_b.read_bytes()
    assert abs(duration(out) - 3.0) < 0.1


def test_get_media_without_preserved_bytes_is_a_clear_error(runs) -> None:
    out = runs["tmp"] / "none.mp4"
    res = run_cli(
        runs["config"], "get", runs["pages"]["redir"], "--artifact", "media", "-o", str(out)
    )
    assert res.code == 3 and len(res.err.strip().splitlines()) == 1, res
    assert not out.exists()
    res = run_cli(
        runs["config"], "get", runs["pages"]["video"], "--artifact", "media", "--index", "2"
    )
    assert res.code == 3 and len(res.err.strip().splitlines()) == 1, res
