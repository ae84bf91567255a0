"""Validate the URLs users give and bring them to one canonical form.

The canonical form decides source identity (``storage.ids.source_id``), so it only makes
changes that can never point at another resource: lowercase scheme and host, IDNA host,
no default port, no fragment, an empty path becomes ``/``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from crawler.errors import InvalidURLError

_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 8192


def canonicalize(url: str) -> str:
    """Return the canonical form of an http(s) URL, or raise InvalidURLError naming it."""
    text = url.strip()
    if not text or len(text) > MAX_URL_LENGTH or any(c.isspace() for c in text):
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
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username or parts.password:
        raise InvalidURLError(f"{url!r}: URLs with credentials are not accepted")
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
