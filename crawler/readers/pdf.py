"""Citations in a PDF: URLs in each page's text layer, and link annotations.

A URL printed on page N and a link annotation on page N (``/Subtype /Link`` with a
``/URI`` action) are each a citation at "page N". When the same URL is both printed and
annotated on a page it is one citation: the annotation's, with the printed URL's passage.
An annotation's anchor is the text under its rectangle when a text chunk fits in it;
pypdf reports whole lines as chunks, so for a link inside a line the anchor is unknown and
its position in the line is estimated (half an em per character) only to find its sentence.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pypdf import PageObject, PasswordType, PdfReader
from pypdf.errors import PyPdfError

from crawler.passages import passage_around
from crawler.readers import DocLink, UnreadableDocument
from crawler.urlfind import find_urls

PASSAGE_CHARS = 600
_EM_PER_CHAR = 0.5  # average glyph width of a Latin text font, in ems
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class _Chunk:
    """A piece of the text layer as pypdf's visitor reports it, placed on the page."""

    text: str
    offset: int  # in the page text
    x: float
    y: float
    char_width: float


def read(data: bytes, name: str) -> list[DocLink]:
    # A file cut short is refused with a clear reason rather than whatever pypdf trips on.
    if b"%%EOF" not in data[-4096:]:
        raise UnreadableDocument(f"{name}: truncated PDF (no %%EOF marker at the end)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise UnreadableDocument(f"{name}: encrypted PDF (a password is needed)")
        links = []
        for number, page in enumerate(reader.pages, start=1):
            links.extend(_page_links(page, number))
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnreadableDocument(f"{name}: cannot read PDF: {reason}") from exc
    return links


def _page_links(page: PageObject, number: int) -> list[DocLink]:
    annotations = _link_annotations(page)
    chunks: list[_Chunk] = []
    text = _text_with_chunks(page, chunks)
    location = f"page {number}"
    found = {}  # key -> (offset, DocLink): printed URLs first
    for url in find_urls(text):
        key = _key(url.url)
        if key not in found:
            passage = passage_around(text, url.start, url.end, PASSAGE_CHARS)
            found[key] = (url.start, DocLink(url.url, location, None, passage))
    for uri, rect in annotations:
        anchor, offset = _under(rect, chunks)
        key = _key(uri)
        if key in found:  # printed too: one citation, the printed URL's passage
            at, printed = found[key]
            found[key] = (at, DocLink(uri, location, anchor or printed.url, printed.passage))
            continue
        passage = None
        if offset is not None:
            passage = passage_around(text, offset, offset + len(anchor or ""), PASSAGE_CHARS)
        at = offset if offset is not None else len(text)
        found[key] = (at, DocLink(uri, location, anchor, passage))
    return [link for _, link in sorted(found.values(), key=lambda pair: pair[0])]


def _link_annotations(page: PageObject) -> list[tuple[str, tuple[float, float, float, float]]]:
    """``(uri, rect)`` of each link annotation with a web URI action, in page order."""
    result = []
    for ref in page.get("/Annots") or []:
        try:
            annot = ref.get_object()
            if annot.get("/Subtype") != "/Link":
                continue
            action = annot.get("/A")
            action = action.get_object() if action is not None else None
            if action is None or action.get("/S") != "/URI":
                continue
            uri = action.get("/URI")
            uri = uri.get_object() if hasattr(uri, "get_object") else uri
            if isinstance(uri, bytes):
                uri = uri.decode("latin-1")
            uri = str(uri).strip()
            x0, y0, x1, y1 = (float(n) for n in annot.get("/Rect"))
        except (PyPdfError, AttributeError, TypeError, ValueError):
            continue  # one broken annotation does not make the document unreadable
        scheme = urlsplit(uri).scheme.lower()
        if uri and scheme in ("http", "https", ""):
            result.append((uri, (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))))
    return result


def _text_with_chunks(page: PageObject, chunks: list[_Chunk]) -> str:
    """The page text, filling ``chunks`` with where each piece of it sits on the page."""
    pieces: list[tuple[str, float, float, float]] = []

    def visit(text: str, cm: list, tm: list, font: object, size: float) -> None:
        if text.strip():
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            width = _EM_PER_CHAR * size * abs(tm[0] * cm[0] or 1)
            pieces.append((text, x, y, width))

    text = page.extract_text(visitor_text=visit) or ""
    cursor = 0
    for piece, x, y, width in pieces:
        offset = text.find(piece.strip(), cursor)
        if offset < 0:
            continue
        cursor = offset + len(piece.strip())
        chunks.append(_Chunk(piece.strip(), offset, x, y, width))
    return text


def _under(
    rect: tuple[float, float, float, float], chunks: list[_Chunk]
) -> tuple[str | None, int | None]:
    """The text under ``rect`` when whole chunks fit in it, else None; and an offset in the
    page text near the link (for its passage), when a chunk overlaps it at all."""
    x0, y0, x1, y1 = rect
    slack = 3.0  # baselines sit a little above the rectangle's bottom edge
    inside, near = [], None
    for chunk in chunks:
        if not y0 - slack <= chunk.y <= y1 + slack:
            continue
        end = chunk.x + len(chunk.text) * chunk.char_width
        if chunk.x >= x0 - slack and end <= x1 + (x1 - x0) * 0.3:
            inside.append(chunk)
        elif chunk.x < x1 and end > x0 and near is None:
            near = chunk.offset + max(0, int((x0 - chunk.x) / chunk.char_width))
            near = min(near, chunk.offset + len(chunk.text))
    if inside:
        return _SPACE.sub(" ", " ".join(c.text for c in inside)).strip(), inside[0].offset
    return None, near


def _key(url: str) -> str:
    """What makes a printed URL and an annotation URI the same citation."""
    url = re.sub(r"^[a-z]+://", "", url.strip(), flags=re.IGNORECASE)
    url = re.sub(r"^www\.", "", url, flags=re.IGNORECASE)
    return url.rstrip("/").lower()
