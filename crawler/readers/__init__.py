"""Read a document and find the citations in it.

One module per input kind; each exposes ``read(data: bytes, name: str) -> list[DocLink]``.
``read_document`` picks the reader by file name and content, and turns any failure into
one ``UnreadableDocument`` error that names the document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from crawler.errors import UsageError

MAX_DOCUMENT_BYTES = 100 * 1024 * 1024


class UnreadableDocument(UsageError):
    """A document that is empty, of an unsupported kind, or cannot be parsed."""


@dataclass(frozen=True)
class DocLink:
    """One citation found in a document.

    ``url`` is the URL as it appears (a scheme-less ``pic.twitter.com/x`` stays so; the
    importer adds the scheme and canonicalises). ``location`` says where: "line 63",
    "page 3", or "css: main > p:nth-of-type(4) > a". ``anchor`` is the link text when the
    link has one; ``passage`` is the sentence or quotation around the link.
    """

    url: str
    location: str
    anchor: str | None = None
    passage: str | None = None


@dataclass(frozen=True)
class ParsedDocument:
    name: str
    kind: str  # text, markdown, html, pdf, docx
    sha256: str
    links: list[DocLink]


def detect_kind(data: bytes, name: str) -> str:
    """The reader for a document, by its content first and its name second."""
    suffix = Path(name).suffix.lower()
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04") and (suffix == ".docx" or b"word/" in data[:4096]):
        return "docx"
    if suffix in (".pdf", ".docx"):
        raise UnreadableDocument(f"{name}: not a valid {suffix[1:].upper()} file")
    head = data[:2048].lstrip().lower()
    if suffix in (".html", ".htm", ".xhtml") or head.startswith((b"<!doctype html", b"<html")):
        return "html"
    if b"\x00" in data[:8192]:
        raise UnreadableDocument(f"{name}: binary file of an unsupported kind")
    if suffix in (".md", ".markdown"):
        return "markdown"
    return "text"


def parse_document(data: bytes, name: str) -> ParsedDocument:
    """Find the citations in ``data`` (the bytes of the document called ``name``)."""
    if not data.strip():
        raise UnreadableDocument(f"{name}: empty document")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise UnreadableDocument(f"{name}: larger than {MAX_DOCUMENT_BYTES // 2**20} MB")
    kind = detect_kind(data, name)
    reader = _reader(kind)
    try:
        links = reader(data, name)
    except UnreadableDocument:
        raise
    except Exception as exc:  # a parser's own error: the document is unreadable
        raise UnreadableDocument(f"{name}: cannot read {kind} document: {exc}") from exc
    return ParsedDocument(name, kind, hashlib.sha256(data).hexdigest(), links)


def read_document(path: Path) -> ParsedDocument:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableDocument(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_document(data, str(path))


def _reader(kind: str):
    # Imported on use: a text import should not load the PDF and HTML stacks.
    if kind == "pdf":
        from crawler.readers.pdf import read
    elif kind == "docx":
        from crawler.readers.docx import read
    elif kind == "html":
        from crawler.readers.html import read
    elif kind == "markdown":
        from crawler.readers.markdown import read
    else:
        from crawler.readers.text import read
    return read
