"""Plain text: every web URL in it is a citation, located by line."""

from __future__ import annotations

from crawler.passages import passage_around
from crawler.readers import DocLink
from crawler.urlfind import find_urls, line_of


def read(data: bytes, name: str) -> list[DocLink]:
    """One ``DocLink`` per URL occurrence, in order, with the passage that cites it."""
    text = decode(data)
    return [
        DocLink(
            found.url,
            f"line {line_of(text, found.start)}",
            None,
            passage_around(text, found.start, found.end),
        )
        for found in find_urls(text)
    ]


def decode(data: bytes) -> str:
    """UTF-8 (with or without a BOM); else Windows-1252, the usual legacy encoding.

    Bytes that Windows-1252 leaves undefined fall back to Latin-1, which decodes anything,
    so a stray byte never makes a document unreadable.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")
