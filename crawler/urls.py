"""Validate the URLs users give and bring them to one canonical form.

The canonical form decides source identity (``storage.ids.source_id``), so it only makes
changes that do not change what a reader is shown: lowercase scheme and host, IDNA host,
no default port, no fragment, an empty path becomes ``/``, tracking parameters dropped
(the rest keep their order: order can matter to a server), and the many spellings of one
tweet become ``https://x.com/<user>/status/<id>``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

from crawler.errors import InvalidURLError

_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 8192

# Query parameters that only say where a click came from. A name ending in "*" is a prefix.
DEFAULT_TRACKING_PARAMS = frozenset({"utm_*", "ref_src", "ref_url", "fbclid", "gclid", "igshid"})
# Share tracking on tweets; on other sites "s" and "t" can select content, so they stay.
TWEET_TRACKING_PARAMS = frozenset({"s", "t"})

_TWITTER_HOSTS = frozenset(
    f"{prefix}{domain}" for prefix in ("", "www.", "mobile.") for domain in ("twitter.com", "x.com")
)
_TWEET_PATH = re.compile(
    r"/(?:(?P<web>i/web)|(?P<user>\w{1,15}))/status(?:es)?/(?P<id>\d{1,20})"
    r"(?:/(?:photo|video)/\d)?/?",
    re.ASCII,
)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:(?!\d)", re.IGNORECASE)


def canonicalize(url: str, tracking_params: frozenset[str] | None = None) -> str:
    """Return the canonical form of an http(s) URL, or raise InvalidURLError naming it.

    ``tracking_params`` replaces ``DEFAULT_TRACKING_PARAMS``; ``frozenset()`` keeps every
    parameter (tweet URLs still lose ``TWEET_TRACKING_PARAMS``).
    """
    text = url.strip()
    # Control characters (NUL, DEL, ...) would slip through urlsplit and IDNA unnoticed.
    if (
        not text
        or len(text) > MAX_URL_LENGTH
        or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in text)
    ):
        raise InvalidURLError(f"{url!r}: not a valid URL")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidURLError(f"{url!r}: not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURLError(f"{url!r}: only http and https URLs can be sources")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidURLError(f"{url!r}: URL has no host")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host.lower()
    except UnicodeError as exc:
        raise InvalidURLError(f"{url!r}: invalid host name") from exc
    if parts.username or parts.password:
        raise InvalidURLError(f"{url!r}: URLs with credentials are not accepted")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default_port = port in (None, _DEFAULT_PORTS[scheme])
    path = parts.path or "/"
    drop = DEFAULT_TRACKING_PARAMS if tracking_params is None else tracking_params
    if default_port and host in _TWITTER_HOSTS:
        scheme = "https"  # both sites redirect http to https
        tweet = _TWEET_PATH.fullmatch(path)
        if tweet:
            user = "i" if tweet.group("web") else tweet.group("user").lower()
            host, path = "x.com", f"/{user}/status/{tweet.group('id')}"
            drop = drop | TWEET_TRACKING_PARAMS
    netloc = host if default_port else f"{host}:{port}"
    return urlunsplit((scheme, netloc, path, _without_params(parts.query, drop), ""))


def with_scheme(url_as_seen: str) -> str:
    """``url_as_seen`` with ``https://`` added when it has no scheme (``pic.twitter.com/x``)."""
    url = url_as_seen.strip()
    if url.startswith("//"):
        return f"https:{url}"
    if _SCHEME.match(url):  # http:, https:, or a scheme canonicalize will refuse
        return url
    return f"https://{url}"


def _without_params(query: str, drop: frozenset[str]) -> str:
    """``query`` without the parameters named in ``drop``; the others untouched, in order."""
    if not query or not drop:
        return query
    prefixes = tuple(name[:-1] for name in drop if name.endswith("*"))
    kept = []
    for param in query.split("&"):
        name = unquote(param.partition("=")[0]).lower()
        if name and (name in drop or (prefixes and name.startswith(prefixes))):
            continue
        kept.append(param)
    return "&".join(kept)
