"""The media stage's rules, piece by piece: which media count, what a media difference
means, and what the fetcher refuses (live streams, duration cap, private redirects).

The end-to-end scenarios through the CLI and a real browser are in test_media_capture.py.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from clips import Clips, make_clips

from crawler.egress_proxy import EgressProxy
from crawler.errors import MediaError
from crawler.media.find import find_media
from crawler.media.judge import media_changes, same_media, with_media
from crawler.media.model import stable_url
from crawler.media.probe import alike, frame_hashes, image_hash, probe
from crawler.media.ytdl import FetchLimits, MediaFetcher
from crawler.netguard import DestinationPolicy
from crawler.profiles import GENERIC, profile_for
from crawler.verdict import Verdict
from storage.warc import Exchange

VOLATILE = ["token", "sig", "x-amz-*"]
PAGE = "https://news.example/story"


def refs(dom: str, url: str = PAGE, traffic: list | None = None) -> list[tuple[str, str, str]]:
    found = find_media(dom, url, profile_for(url), traffic or [], volatile=VOLATILE)
    return [(r.url, r.kind, r.found_by) for r in found]


# Discovery


def test_content_video_counts_furniture_and_ads_do_not() -> None:
    dom = """<html><body><article><h1>Flood</h1>
      <video controls src="/v/flood.mp4?token=1"></video>
      <div class="ad-slot"><video src="/promo/spot.mp4"></video></div>
      <video src="https://securepubads.doubleclick.net/x.mp4"></video>
      </article>
      <aside><video src="/v/other.mp4"></video></aside>
      <div class="related-videos"><video><source src="/v/rail.mp4"></video></div>
      <footer><audio src="/jingle.mp3"></audio></footer></body></html>"""
    assert refs(dom) == [("https://news.example/v/flood.mp4?token=1", "video", "html5")]


def test_first_source_child_and_audio() -> None:
    dom = """<html><body><main><audio controls><source src="/a/talk.ogg">
      <source src="/a/talk.mp3"></audio></main></body></html>"""
    assert refs(dom) == [("https://news.example/a/talk.ogg", "audio", "html5")]


def test_jsonld_video_anywhere_images_only_top_level() -> None:
    dom = """<html><head><script type="application/ld+json">
      {"@context": "https://schema.org", "@graph": [
        {"@type": "NewsArticle", "image": {"@type": "ImageObject", "contentUrl": "/thumb.jpg"},
         "video": {"@type": "VideoObject", "contentUrl": "/v/main.mp4",
                   "thumbnailUrl": "/v/main.jpg"}},
        {"@type": "ImageObject", "contentUrl": "/photos/lead.jpg"}]}
      </script></head><body><p>text</p></body></html>"""
    assert refs(dom) == [
        ("https://news.example/v/main.mp4", "video", "jsonld"),
        ("https://news.example/photos/lead.jpg", "image", "jsonld"),
    ]


def test_og_video_file_counts_player_page_and_unshown_og_image_do_not() -> None:
    dom = """<html><head><meta property="og:video" content="/v/a.mp4">
      <meta property="og:image" content="/share-card.png"></head><body><p>x</p></body></html>"""
    assert refs(dom) == [("https://news.example/v/a.mp4", "video", "og")]
    player = """<html><head><meta property="og:video:url" content="https://player.example/e/1">
      <meta property="og:video:type" content="text/html"></head><body></body></html>"""
    assert refs(player) == []


def test_og_image_counts_when_the_content_shows_it() -> None:
    dom = """<html><head><meta property="og:image" content="/media/p.jpg?name=large"></head>
      <body><article><p>x</p><img src="/media/p.jpg?name=small" width="600">
      <img src="/pixel.gif" width="1" height="1"></article></body></html>"""
    assert refs(dom) == [("https://news.example/media/p.jpg?name=large", "image", "og")]


def _ex(url: str, status: int = 200, body: bytes = b"", mtype: str = "") -> Exchange:
    headers = [("Content-Type", mtype)] if mtype else []
    return Exchange(url=url, status=status, body=body, response_headers=headers)


def test_script_player_gets_the_master_playlist_not_variants_or_ads() -> None:
    dom = "<html><body><article><video id=player></video></article></body></html>"
    traffic = [
        _ex("https://ads.example/ads/pre.m3u8", body=b"#EXTM3U\nseg.ts\n"),
        _ex("https://cdn.example/s/master.m3u8", body=b"#EXTM3U\n#EXT-X-STREAM-INF:\nlow.m3u8\n"),
        _ex("https://cdn.example/s/low.m3u8", body=b"#EXTM3U\nseg0.ts\n"),
        _ex("https://cdn.example/d/x", mtype="application/dash+xml"),
    ]
    assert refs(dom, traffic=traffic) == [("https://cdn.example/s/master.m3u8", "video", "hls")]


def test_manifests_need_a_player_without_a_file() -> None:
    dom = "<html><body><article><video src='/v/a.mp4'></video></article></body></html>"
    traffic = [_ex("https://cdn.example/s/master.m3u8", body=b"#EXTM3U\n")]
    assert refs(dom, traffic=traffic) == [("https://news.example/v/a.mp4", "video", "html5")]


def test_a_file_the_browser_got_404_for_is_gone() -> None:
    dom = "<html><body><article><video src='/v/a.mp4'></video></article></body></html>"
    found = find_media(
        dom, PAGE, GENERIC, [_ex("https://news.example/v/a.mp4", 404)], volatile=VOLATILE
    )
    assert [(r.url, r.gone) for r in found] == [("https://news.example/v/a.mp4", "HTTP 404")]


def test_tweet_photos_at_original_size_from_the_focal_tweet_only() -> None:
    url = "https://x.com/someone/status/222"

    def tweet(status: str, photo: str) -> str:
        return f"""<article data-testid="tweet"><a href="/someone/status/{status}"><time>1h</time>
          </a><div data-testid="tweetText">words</div><div data-testid="tweetPhoto">
          <img src="https://pbs.twimg.com/media/{photo}?format=jpg&name=small"></div></article>"""

    dom = f"<html><body>{tweet('111', 'PARENT')}{tweet('222', 'FOCAL')}</body></html>"
    assert refs(dom, url) == [
        ("https://pbs.twimg.com/media/FOCAL?format=jpg&name=orig", "image", "profile")
    ]


def test_embassy_alert_attachments() -> None:
    url = "https://xx.usembassy.gov/security-alert-1/"
    dom = """<html><body><h1 class="entry-title">Alert</h1><div class="entry-content">
      <p>Read the <a href="/wp-content/uploads/alert.PDF">notice</a>.</p>
      <img src="/wp-content/uploads/map.png"></div>
      <div id="sidebar"><a href="/other.pdf">x</a></div></body></html>"""
    assert refs(dom, url) == [
        ("https://xx.usembassy.gov/wp-content/uploads/alert.PDF", "document", "profile"),
        ("https://xx.usembassy.gov/wp-content/uploads/map.png", "image", "profile"),
    ]


def test_each_media_once_whatever_its_token() -> None:
    dom = """<html><head><meta property="og:video" content="/v/a.mp4?token=2"></head>
      <body><article><video src="/v/a.mp4?token=1"></video></article></body></html>"""
    assert refs(dom) == [("https://news.example/v/a.mp4?token=1", "video", "html5")]


def test_stable_url_drops_signatures_only() -> None:
    url = "https://cdn.example/v.mp4?id=7&token=abc&X-Amz-Signature=s&X-Amz-Date=d&sig=1"
    assert stable_url(url, VOLATILE) == "https://cdn.example/v.mp4?id=7"


# Judging


def _video(sha: str, frames: list[str], duration: float = 3.0, **more) -> dict:
    return {
        "kind": "video",
        "url": more.pop("url", "https://cdn.example/v.mp4"),
        "status": more.pop("status", "preserved"),
        "sha256": sha,
        "frames": frames,
        "probe": {"duration": duration},
        **more,
    }


FRAMES = ["db999999999993db", "db999999999945db", "db99999999999bdb"]
OTHER = ["000000000069c2c2", "000000000069c2c2", "000000000069c2c2"]
NEAR = ["db999999999983db", "db999999999945db", "db99999999999bdb"]  # one bit off


def test_same_bytes_or_same_pictures_are_the_same_video() -> None:
    assert same_media(_video("a", FRAMES), _video("a", [], url="https://other/x.mp4"))
    assert same_media(_video("a", FRAMES), _video("b", NEAR, duration=3.02))
    assert not same_media(_video("a", FRAMES), _video("b", OTHER))
    assert not same_media(_video("a", FRAMES), _video("b", NEAR, duration=5.0))


def test_replaced_removed_added_and_undecided() -> None:
    old = [_video("a", FRAMES)]
    assert media_changes(old, [_video("b", NEAR)]) == []
    assert media_changes(old, [_video("c", OTHER, url="https://cdn/2.mp4")]) == [
        "video replaced: https://cdn/2.mp4"
    ]
    assert media_changes(old, []) == ["video removed: https://cdn.example/v.mp4"]
    gone = {"kind": "video", "url": "https://cdn.example/v.mp4", "status": "gone"}
    assert media_changes(old, [gone]) == ["video removed: https://cdn.example/v.mp4"]
    failed = {"kind": "video", "url": "https://cdn.example/v.mp4", "status": "failed"}
    assert media_changes(old, [failed]) == []
    photo = {"kind": "image", "url": "https://cdn/p.jpg", "status": "preserved", "sha256": "p"}
    assert media_changes([*old, photo], old) == ["photo removed: https://cdn/p.jpg"]
    assert media_changes([], [photo]) == ["photo added: https://cdn/p.jpg"]


def test_page_verdict_turns_changed_only_with_a_media_change() -> None:
    unchanged = Verdict("unchanged", "content identical (noise ignored)", 1.0)
    old = [_video("a", FRAMES)]
    assert with_media(unchanged, None, []) == unchanged  # nothing looked for media before
    assert with_media(unchanged, old, [_video("a", FRAMES)]) == unchanged
    changed = with_media(unchanged, old, [])
    assert changed.name == "changed" and changed.reason.startswith("video removed")
    text = Verdict("changed", "main text changed: 1 line", 0.9)
    both = with_media(text, old, [_video("c", OTHER)])
    assert both.reason == "video replaced: https://cdn.example/v.mp4; main text changed: 1 line"
    gone = Verdict("gone", "HTTP 404")
    assert with_media(gone, old, []) == gone


# Reading media files


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return make_clips(tmp_path_factory.getbasetemp() / "clips")


def test_frame_hashes_tell_a_reencode_from_another_video(clips: Clips) -> None:
    def hashes(path: Path) -> list[str]:
        return frame_hashes(path, probe(path, "/usr/bin")["duration"], "/usr/bin")

    a = hashes(clips.clip_a)
    assert len(a) == 5
    assert alike(a, hashes(clips.clip_a_reencoded))
    assert not alike(a, hashes(clips.clip_b))
    photo = image_hash(clips.photo.read_bytes())
    assert alike(photo, photo) and not alike(photo, image_hash(clips.photo_b.read_bytes()))


def test_probe_refuses_what_is_not_media(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"<html>not a video</html>")
    with pytest.raises(MediaError):
        probe(junk, "/usr/bin")


# Fetching: caps, live streams, destinations


@pytest.fixture
def served(clips: Clips, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    shutil.copytree(clips.hls.parent, root / "hls")
    live = root / "live"
    live.mkdir()
    segment = sorted((root / "hls").glob("*.ts"))[0]
    shutil.copy(segment, live / "s0.ts")
    # A live playlist: no #EXT-X-ENDLIST, the server will add segments later.
    (live / "index.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXTINF:1.0,\ns0.ts\n"
    )

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {
            **http.server.SimpleHTTPRequestHandler.extensions_map,
            ".m3u8": "application/vnd.apple.mpegurl",
            ".ts": "video/mp2t",
        }

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()
    thread.join()


def _fetch(base: str, work: Path, path: str, allow: str = "", **limits: float) -> Path:
    port = (allow or base).rsplit(":", 1)[1]
    policy = DestinationPolicy(allow_hosts=(f"127.0.0.1:{port}",))
    caps = {"max_bytes": 50 * 2**20, "max_duration_s": 7200.0, "timeout_s": 60.0, **limits}
    with EgressProxy(policy) as proxy:
        assert proxy.url is not None
        fetcher = MediaFetcher(
            proxy.url,
            FetchLimits(**caps, user_agent="test", ffmpeg_dir="/usr/bin"),  # type: ignore[arg-type]
            work / "fetch",
            base,
        )
        file, _ = fetcher.download(f"{base}/{path}")
        return file


def test_hls_is_merged_into_one_playable_file(served) -> None:
    base, work = served
    file = _fetch(base, work, "hls/index.m3u8")
    assert abs(probe(file, "/usr/bin")["duration"] - 3.0) < 0.2


def test_live_stream_and_duration_cap_are_skipped_with_a_reason(served) -> None:
    base, work = served
    with pytest.raises(MediaError, match="live stream") as live:
        _fetch(base, work, "live/index.m3u8")
    assert live.value.status == "skipped"
    with pytest.raises(MediaError, match=r"over the 2 s duration cap") as long:
        _fetch(base, work, "hls/index.m3u8", max_duration_s=2.0)
    assert long.value.status == "skipped"


def test_a_destination_the_policy_refuses_is_never_fetched(served) -> None:
    base, work = served
    port = int(base.rsplit(":", 1)[1])
    with pytest.raises(MediaError, match=r"refused: .*loopback"):
        # Another loopback port than the one allowed.
        other = port + 1 if port < 65535 else port - 1
        _fetch(f"http://127.0.0.1:{other}", work, "x.mp4", allow=base)
