"""Which media of a rendered page belong to the cited content.

The rule (docs/media.md): media count when the page itself declares them or shows them in
its content, never when they sit in the page's furniture.

- ``<video>``/``<audio>`` elements (their ``src`` or ``<source>`` children) that remain after
  the site profile's scope (the focal tweet) and the noise rules of text extraction
  (nav, aside, footer, iframes; ad, promo, related, recommend, sponsor class/id words;
  hidden elements) have removed the furniture;
- HLS (.m3u8) and DASH (.mpd) manifests the browser fetched, when a content player has no
  file of its own (a script-driven player), ads' and variant playlists excluded;
- JSON-LD ``VideoObject``/``AudioObject`` (anywhere in the graph) and top-level
  ``ImageObject`` with a ``contentUrl``; ``og:video``/``og:audio`` files; ``og:image`` only
  when the content shows that image (most sites' og:image is a share card);
- the profile's own media: a tweet's photos at original size, an alert's attached PDFs
  and images.

URLs on ad or tracker hosts and paths, and images drawn 2 px or smaller, never count.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

from lxml.html import HtmlElement

from crawler import headerfields
from crawler.media.model import MediaRef, stable_url
from crawler.profiles.base import Profile
from crawler.profiles.dom import drop_noise, parse

_AD_URL = re.compile(
    r"doubleclick|googlesyndication|googleadservices|imasdk|adservice|adnxs|moatads|"
    r"taboola|outbrain|scorecardresearch|/ads?/|/adv?ert|/vast|/vmap|[?&]ad_?unit=",
    re.I,
)
_HLS_TYPES = ("application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl")
_DASH_TYPES = ("application/dash+xml",)
# Words without which a page can hold no media these rules find: the page is not parsed.
_HINTS = re.compile(rb"<video|<audio|application/ld\+json|og:video|og:audio|og:image", re.I)
_JSONLD_KINDS = {"VideoObject": "video", "AudioObject": "audio", "ImageObject": "image"}


def _usable(url: str | None) -> bool:
    if not url:
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and not _AD_URL.search(url)


def manifest_kind(url: str, media_type: str = "") -> str | None:
    """ "hls" or "dash" for a streaming manifest's URL or content type, else None."""
    path = urlsplit(url).path.lower()
    if path.endswith(".m3u8") or media_type in _HLS_TYPES:
        return "hls"
    if path.endswith(".mpd") or media_type in _DASH_TYPES:
        return "dash"
    return None


def _players(scope: HtmlElement, base: str) -> tuple[list[tuple[str, str]], int]:
    """(url, kind) of each content player's own file, and how many players have none."""
    found: list[tuple[str, str]] = []
    without_file = 0
    for el in scope.iter("video", "audio"):
        sources = [el.get("src")] + [s.get("src") for s in el.iter("source")]
        urls = [urljoin(base, s) for s in sources if s and not s.startswith(("blob:", "data:"))]
        if urls:
            found.append((urls[0], el.tag))  # the browser plays the first it can
        else:
            without_file += 1
    return found, without_file


def _jsonld_objects(root: HtmlElement) -> Iterable[tuple[dict, bool]]:
    """Every JSON-LD object on the page, and whether it is top-level (not a property)."""

    def walk(value: object, top: bool) -> Iterable[tuple[dict, bool]]:
        if isinstance(value, list):
            for v in value:
                yield from walk(v, top)
        elif isinstance(value, dict):
            yield value, top
            for key, v in value.items():
                yield from walk(v, top and key == "@graph")

    for script in root.iter("script"):
        if (script.get("type") or "").lower() != "application/ld+json":
            continue
        try:
            yield from walk(json.loads(script.text or ""), True)
        except ValueError:
            continue


def _jsonld_media(root: HtmlElement, base: str) -> list[tuple[str, str]]:
    found = []
    for obj, top in _jsonld_objects(root):
        types = obj.get("@type")
        types = types if isinstance(types, list) else [types]
        kind = next((_JSONLD_KINDS[t] for t in types if t in _JSONLD_KINDS), None)
        url = obj.get("contentUrl")
        if kind is None or not isinstance(url, str):
            continue
        if kind == "image" and not top:
            continue  # an article's or a video's thumbnail, not an item of its own
        found.append((urljoin(base, url), kind))
    return found


def _meta(root: HtmlElement, *names: str) -> list[str]:
    return [
        m.get("content", "")
        for m in root.iter("meta")
        if (m.get("property") or m.get("name") or "").lower() in names and m.get("content")
    ]


def _og_media(root: HtmlElement, content: HtmlElement, base: str) -> list[tuple[str, str]]:
    found = []
    video_type = (_meta(root, "og:video:type") or [""])[0].lower()
    if not video_type.startswith("text/html"):  # an embeddable player page, not a file
        for url in _meta(root, "og:video:secure_url", "og:video:url", "og:video")[:1]:
            found.append((urljoin(base, url), "video"))
    for url in _meta(root, "og:audio:secure_url", "og:audio")[:1]:
        found.append((urljoin(base, url), "audio"))
    # The same image at another size or format differs in the query only.
    shown = {_without_query(urljoin(base, i.get("src", ""))) for i in _images(content)}
    for url in _meta(root, "og:image:secure_url", "og:image")[:1]:
        if _without_query(urljoin(base, url)) in shown:
            found.append((urljoin(base, url), "image"))
    return found


def _without_query(url: str) -> str:
    return urlsplit(url)._replace(query="", fragment="").geturl()


def _images(scope: HtmlElement) -> list[HtmlElement]:
    """Images drawn bigger than a tracking pixel."""

    def tiny(el: HtmlElement) -> bool:
        sizes = [el.get("width"), el.get("height")]
        return any(s is not None and s.strip().isdigit() and int(s) <= 2 for s in sizes)

    return [i for i in scope.iter("img") if i.get("src") and not tiny(i)]


def _stream_manifests(traffic: list, players_without_file: int) -> list[MediaRef]:
    """The manifests a script-driven content player loaded, master playlists only."""
    if players_without_file == 0:
        return []
    manifests = []
    bodies = b"\n".join(ex.body or b"" for ex in traffic if manifest_kind(ex.url) is not None)
    for ex in traffic:
        kind = manifest_kind(ex.url, headerfields.media_type(ex.response_headers))
        if kind is None or not _usable(ex.url):
            continue
        tail = urlsplit(ex.url).path.rsplit("/", 1)[-1].encode()
        if kind == "hls" and tail and tail in bodies and ex.body and tail not in ex.body:
            continue  # a variant named by a master playlist the player loaded
        gone = f"HTTP {ex.status}" if ex.status in (404, 410) else None
        manifests.append(MediaRef(ex.url, "video", kind, gone=gone))
    return manifests[:players_without_file]


def find_media(
    dom: str,
    url: str,
    profile: Profile,
    traffic: list,
    *,
    volatile: list[str],
    limit: int = 10,
) -> list[MediaRef]:
    """The media of the cited content of a rendered page, in page order, each once.

    ``traffic`` holds the browser's exchanges (``storage.warc.Exchange``): the HTTP status
    of a file the page asked for, and the manifests a player loaded by script.
    """
    if (
        profile.media is None
        and not _HINTS.search(dom.encode("utf-8", "replace"))
        and not any(manifest_kind(ex.url) for ex in traffic)
    ):
        return []
    root = parse(dom)
    if root is None:
        return []
    declared = _jsonld_media(root, url)
    scope = root if profile.focus is None else profile.focus(root, url)
    if scope is None:
        return []  # the page does not show the cited item
    tree = copy.deepcopy(root)
    scope_copy = tree if scope is root else tree.xpath(root.getroottree().getpath(scope))[0]
    drop_noise(tree, profile.noise_selectors, keep=[scope_copy])
    content = scope_copy
    players, without_file = _players(content, url)
    found: list[tuple[str, str, str]] = [(u, k, "html5") for u, k in players]
    found += [(u, k, "jsonld") for u, k in declared]
    found += [(u, k, "og") for u, k in _og_media(root, content, url)]
    if profile.media is not None:
        found += [(u, k, "profile") for u, k in profile.media(content, url)]
    status = {ex.url: ex.status for ex in traffic}
    refs = [
        MediaRef(u, k, by, gone=f"HTTP {status[u]}" if status.get(u) in (404, 410) else None)
        for u, k, by in found
        if _usable(u)
    ]
    refs += _stream_manifests(traffic, without_file)
    seen: set[str] = set()
    unique = []
    for ref in refs:
        key = stable_url(ref.url, volatile)
        if key not in seen:
            seen.add(key)
            unique.append(ref)
    return unique[:limit]
