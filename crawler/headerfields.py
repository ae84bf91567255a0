"""Header fields kept as (name, value) pairs, the way captures and fetchers record them.

Names match case-insensitively (RFC 9110 5.1); the first field of a name wins.
"""

from __future__ import annotations

from collections.abc import Iterable

Pairs = Iterable[tuple[str, str]]


def field(headers: Pairs, name: str) -> str | None:
    """The value of the first field called ``name`` (given in lower case), or None."""
    return next((v for k, v in headers if k.lower() == name), None)


def media_type(headers: Pairs) -> str:
    """The Content-Type's type/subtype in lower case, without parameters; "" if none."""
    return (field(headers, "content-type") or "").split(";")[0].strip().lower()


def validators(headers: Pairs) -> dict[str, str | None]:
    """What a conditional GET sends back next time: the ETag and Last-Modified."""
    pairs = list(headers)
    return {"etag": field(pairs, "etag"), "last_modified": field(pairs, "last-modified")}
