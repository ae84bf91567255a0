"""The main text of a capture: what a reader of the cited page reads.

HTML goes through trafilatura (boilerplate removed); when it finds no main content the
whole visible text is used, so a short page (a status line, an alert) still has text.
PDFs are read with pypdf. Other types have no text.
"""

from __future__ import annotations

import io
import logging
import re

import lxml.html
import trafilatura
from pypdf import PdfReader
from pypdf.errors import PyPdfError

logger = logging.getLogger(__name__)

_SPACE = re.compile(r"[ \t\r\f\v]+")


def _visible_text(html: str) -> str:
    try:
        tree = lxml.html.fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return ""
    for bad in tree.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    return tree.text_content()


def _tidy(text: str) -> str:
    lines = (_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def html_text(html: str, url: str | None = None) -> str:
    """Main text of a rendered HTML document."""
    if not html.strip():
        return ""
    text = trafilatura.extract(
        html, url=url, include_comments=False, include_tables=True, favor_recall=True
    )
    if not text:
        text = _visible_text(html)
    return _tidy(text or "")


def pdf_text(data: bytes) -> str:
    """Text layer of a PDF, page by page; empty when the PDF is unreadable."""
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, OSError) as exc:
        logger.warning("cannot read PDF text: %s", exc, extra={"error": str(exc)})
        return ""
    return _tidy("\n".join(pages))


def main_text(media_type: str, raw: bytes, dom: str, url: str | None = None) -> str:
    """Pick the extractor by the served media type."""
    if media_type == "application/pdf" or raw.startswith(b"%PDF-"):
        return pdf_text(raw)
    if media_type.startswith(("image/", "audio/", "video/", "font/")):
        return ""  # the DOM is only the browser's viewer around the media
    if dom:
        return html_text(dom, url)
    if media_type.startswith("text/"):
        return _tidy(raw.decode("utf-8", "replace"))
    return ""
