"""Citations in a DOCX: hyperlinks and typed URLs in the body, footnotes and endnotes.

A hyperlink is a ``w:hyperlink`` whose ``r:id`` names an external relationship, or a
HYPERLINK field (simple or complex); its anchor is the linked text and its passage the
sentence around it. URLs typed in the text are found with ``crawler.urlfind``; one that a
hyperlink in the same paragraph already covers is not counted twice. Locations are
"paragraph N" (the N-th body paragraph that has text or a link, tables included),
"footnote N" and "endnote N" (N-th real note, as Word numbers them by default).
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import lxml.etree

from crawler.passages import passage_around
from crawler.readers import DocLink, UnreadableDocument
from crawler.urlfind import find_urls

MAX_MEMBER_BYTES = 50 * 1024 * 1024  # a larger XML part is a zip bomb, not a document
PASSAGE_CHARS = 600

_REL_NAMESPACES = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "http://purl.oclc.org/ooxml/officeDocument/relationships",  # Strict OOXML
)
_PKG = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_HYPERLINK_FIELD = re.compile(r'HYPERLINK\s+(?:"([^"]+)"|(\S+))')
_TEXT_OF = {"t": None, "tab": " ", "br": "\n", "cr": "\n", "noBreakHyphen": "-"}
_NOT_NOTES = {"separator", "continuationSeparator", "continuationNotice"}
# No DTDs, entities or network: a document's XML must not be able to expand or fetch.
_PARSER = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@dataclass(frozen=True)
class _Span:
    url: str
    start: int
    end: int


def read(data: bytes, name: str) -> list[DocLink]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return _Package(zf, name).links()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, RuntimeError) as exc:
        raise UnreadableDocument(f"{name}: not a valid DOCX file: {_first_line(exc)}") from exc
    except lxml.etree.XMLSyntaxError as exc:
        raise UnreadableDocument(f"{name}: malformed XML in DOCX: {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


class _Package:
    """The parts of one DOCX that can hold citations."""

    def __init__(self, zf: zipfile.ZipFile, name: str):
        self.zf = zf
        self.name = name
        self.names = set(zf.namelist())

    def links(self) -> list[DocLink]:
        main = self._main_part()
        doc = self._xml(main)
        w = lxml.etree.QName(doc).namespace
        related = self._relationships(main)
        links = []
        number = 0
        body = doc.find(f"{{{w}}}body")
        for p in body.iter(f"{{{w}}}p") if body is not None else ():
            if _in_fallback(p):
                continue
            text, spans = _paragraph(p, w, related["external"])
            if text.strip() or spans:
                number += 1
                links.extend(_citations(text, spans, f"paragraph {number}"))
        for kind in ("footnote", "endnote"):
            part = related["notes"].get(kind)
            if part is not None and part in self.names:
                links.extend(self._notes(part, kind))
        return links

    def _notes(self, part: str, kind: str) -> Iterator[DocLink]:
        root = self._xml(part)
        w = lxml.etree.QName(root).namespace
        external = self._relationships(part)["external"]
        number = 0
        for note in root.iter(f"{{{w}}}{kind}"):
            if note.get(f"{{{w}}}type") in _NOT_NOTES:
                continue
            number += 1
            for p in note.iter(f"{{{w}}}p"):
                text, spans = _paragraph(p, w, external)
                yield from _citations(text, spans, f"{kind} {number}")

    def _main_part(self) -> str:
        if "_rels/.rels" in self.names:
            for rel in self._xml("_rels/.rels").iter(f"{_PKG}Relationship"):
                if rel.get("Type", "").endswith("/officeDocument"):
                    target = rel.get("Target", "").lstrip("/")
                    if target in self.names:
                        return target
        if "word/document.xml" in self.names:
            return "word/document.xml"
        raise UnreadableDocument(f"{self.name}: not a DOCX file (a zip without a document part)")

    def _relationships(self, part: str) -> dict:
        """The part's external link targets by id, and its footnote/endnote parts."""
        folder, base = posixpath.split(part)
        rels_path = posixpath.join(folder, "_rels", base + ".rels")
        external: dict[str, str] = {}
        notes: dict[str, str] = {}
        if rels_path in self.names:
            for rel in self._xml(rels_path).iter(f"{_PKG}Relationship"):
                kind = rel.get("Type", "").rsplit("/", 1)[-1]
                target = rel.get("Target", "")
                if rel.get("TargetMode") == "External":
                    external[rel.get("Id", "")] = target
                elif kind in ("footnotes", "endnotes"):
                    path = posixpath.normpath(posixpath.join(folder, target))
                    notes[kind[:-1]] = target.lstrip("/") if target.startswith("/") else path
        return {"external": external, "notes": notes}

    def _xml(self, member: str) -> lxml.etree._Element:
        info = self.zf.getinfo(member)
        # zipfile stops at the declared size, so checking it bounds what is inflated.
        if info.file_size > MAX_MEMBER_BYTES:
            raise UnreadableDocument(
                f"{self.name}: {member} is {info.file_size} bytes uncompressed, over the limit"
                f" of {MAX_MEMBER_BYTES} (a zip bomb?)"
            )
        return lxml.etree.fromstring(self.zf.read(info), _PARSER)


def _paragraph(p: lxml.etree._Element, w: str, external: dict[str, str]):
    """A paragraph's visible text and the hyperlink spans in it.

    Text in nested paragraphs (text boxes) belongs to those paragraphs, not this one.
    Deleted text (``w:delText``) and field codes (``w:instrText``) are not visible.
    """
    parts: list[str] = []
    length = 0
    spans: list[_Span] = []
    opened: dict = {}  # hyperlink element -> (url, start)
    fields: list[dict] = []  # complex fields being read: instruction, start of result
    for event, el in lxml.etree.iterwalk(p, events=("start", "end")):
        if not isinstance(el.tag, str) or (el is not p and _owner(el, w) is not p):
            continue
        qname = lxml.etree.QName(el)
        local = qname.localname if qname.namespace == w else ""
        if event == "end":
            if el in opened:
                url, start = opened.pop(el)
                spans.append(_Span(url, start, length))
            continue
        if local in ("hyperlink", "fldSimple"):
            url = _hyperlink_target(el, w, external)
            if url:
                opened[el] = (url, length)
        elif local == "fldChar":
            kind = el.get(f"{{{w}}}fldCharType")
            if kind == "begin":
                fields.append({"instr": "", "start": None})
            elif kind == "separate" and fields:
                fields[-1]["start"] = length
            elif kind == "end" and fields:
                field = fields.pop()
                url = _field_url(field["instr"])
                if url and field["start"] is not None:
                    spans.append(_Span(url, field["start"], length))
        elif local == "instrText" and fields:
            fields[-1]["instr"] += el.text or ""
        elif local in _TEXT_OF:
            piece = _TEXT_OF[local] if _TEXT_OF[local] is not None else (el.text or "")
            parts.append(piece)
            length += len(piece)
    return "".join(parts), spans


def _in_fallback(p: lxml.etree._Element) -> bool:
    # A text box is stored twice, as DrawingML and as an mc:Fallback VML copy: read it once.
    return any(lxml.etree.QName(a).localname == "Fallback" for a in p.iterancestors())


def _owner(el: lxml.etree._Element, w: str) -> lxml.etree._Element | None:
    return next(el.iterancestors(f"{{{w}}}p"), None)


def _hyperlink_target(el: lxml.etree._Element, w: str, external: dict[str, str]) -> str | None:
    if lxml.etree.QName(el).localname == "fldSimple":
        return _field_url(el.get(f"{{{w}}}instr") or "")
    for ns in _REL_NAMESPACES:
        rel_id = el.get(f"{{{ns}}}id")
        if rel_id is not None:
            return _web(external.get(rel_id, ""))
    return None  # an internal link to a bookmark


def _field_url(instruction: str) -> str | None:
    match = _HYPERLINK_FIELD.search(instruction)
    return _web(match.group(1) or match.group(2)) if match else None


def _web(url: str) -> str | None:
    """The URL if it can be a web source (mailto:, file: and the like cannot)."""
    url = url.strip()
    return url if url and urlsplit(url).scheme.lower() in ("http", "https", "") else None


def _citations(text: str, spans: list[_Span], location: str) -> Iterator[DocLink]:
    for span in spans:
        anchor = text[span.start : span.end].strip() or None
        yield DocLink(span.url, location, anchor, _passage(text, span.start, span.end))
    linked = {_bare(span.url) for span in spans}
    for found in find_urls(text):
        overlaps = any(found.start < s.end and s.start < found.end for s in spans)
        if not overlaps and _bare(found.url) not in linked:
            yield DocLink(found.url, location, None, _passage(text, found.start, found.end))


def _passage(text: str, start: int, end: int) -> str | None:
    return passage_around(text, start, end, PASSAGE_CHARS) if text.strip() else None


def _bare(url: str) -> str:
    """A URL without scheme and trailing slash: a typed copy of a link matches it."""
    return re.sub(r"^[a-z]+://", "", url, flags=re.IGNORECASE).rstrip("/").lower()
