"""Markdown: inline, reference and image links, autolinks and bare URLs are citations.

Offsets are kept by masking instead of deleting: code, reference definitions and markup
become spaces in copies of the text exactly as long as the source, so one offset means the
same place in the source (line numbers), in ``scan`` (where links are looked for) and in
``display`` (the plain text that passages are cut from, link text in place of each link).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator

from crawler.passages import passage_around
from crawler.readers import DocLink
from crawler.readers.text import decode
from crawler.urlfind import find_urls, line_of

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*", re.MULTILINE)
_INLINE_CODE = re.compile(r"(`+)([^`\n](?:[^\n]{0,1000}?[^`\n])?)\1(?!`)")
_DEFINITION = re.compile(
    r"^ {0,3}\[(?P<label>(?:[^\[\]\\\n]|\\.){1,999})\]:[ \t]*\n?[ \t]*"
    r"(?:<(?P<angle>[^<>\n]*)>|(?P<dest>\S+))"
    r"(?:[ \t]+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?[ \t]*$",
    re.MULTILINE,
)
_LINE_MARKUP = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+|^[ \t]{0,3}#{1,6}(?=[ \t]|$)", re.MULTILINE)
_TEXT = r"(?:[^\[\]\\]|\\.|\[(?:[^\[\]\\]|\\.)*\])*"  # one level of nested brackets
_LINK = re.compile(
    rf"""
    <(?P<auto>[a-z][a-z0-9+.-]{{1,31}}:[^\s<>]*)>
  | (?P<bang>!?)\[(?P<text>{_TEXT})\]
    (?:
        \([ \t]*\n?[ \t]*
        (?:<(?P<angle>[^<>\n]*)>|(?P<dest>(?:[^\s()\[\]\\]|\\.|\((?:[^\s()\[\]\\]|\\.)*\))*))
        (?:\s+(?:"[^"\n]*"|'[^'\n]*'|\([^()\n]*\)))?[ \t]*\)
      | \[(?P<label>(?:[^\[\]\\]|\\.)*)\]
    )?
    """,
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)
# Links start at "[", "![" or "<"; a fast search for those characters finds where to try.
_LINK_START = re.compile(r"[<\[]")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_MARKUP = re.compile(r"\\(?P<escaped>[!-/:-@\[-`{-~])|[*_~]+")
_WEB = re.compile(r"(?:https?:)?//[^/?#\s]", re.IGNORECASE)

# A citation found: the URL as written, its offset in the source, where its link text (or
# URL) is in ``display``, and the link text.
_Found = tuple[str, int, int, int, str | None]


def read(data: bytes, name: str) -> list[DocLink]:
    """One ``DocLink`` per link or URL occurrence, in order of appearance."""
    # One kind of line end keeps the line-anchored patterns simple; line numbers stay.
    source = decode(data).replace("\r\n", "\n").replace("\r", "\n")
    scan, display = _masked(source)
    definitions, spans = _definitions(scan)
    scan, display = _blank_spans(scan, spans), _blank_spans(display, spans)
    walk = _Walk(scan, display, definitions)
    walk.region(0, len(scan))
    # Bare URLs: not in code, definitions or links. Markup is masked around them, not in them.
    urls = find_urls(_blank_spans(scan, walk.links))
    display = _outside("".join(walk.pieces), [(u.start, u.end) for u in urls], _unmark)
    found = walk.found + [(u.url, u.start, u.start, u.end, None) for u in urls]
    found.sort(key=lambda f: f[1])
    return [
        DocLink(url, f"line {line_of(source, at)}", anchor, passage_around(display, lo, hi))
        for url, at, lo, hi, anchor in found
    ]


class _Walk:
    """Finds the links in ``scan`` and builds ``display`` with link text in their place."""

    def __init__(self, scan: str, display: str, definitions: dict[str, str]) -> None:
        self.scan, self.display, self.definitions = scan, display, definitions
        self.found: list[_Found] = []
        self.pieces: list[str] = []  # display, in order
        self.links: list[tuple[int, int]] = []  # spans of links, hidden from the URL scan

    def region(self, lo: int, hi: int) -> None:
        cursor = lo
        for match in _links(self.scan, lo, hi):
            if match.group("auto") is None and self.destination(match) is None:
                # Plain brackets ("[the Taliban]") stay text; links inside them count.
                self.pieces.append(self.display[cursor : match.start("text")])
                self.region(*match.span("text"))
                cursor = match.end("text")
                continue
            self.pieces.append(self.display[cursor : match.start()])
            shown = self.link(match, match.start())
            self.pieces.append(shown.ljust(match.end() - match.start()))
            self.links.append(match.span())
            cursor = match.end()
        self.pieces.append(self.display[cursor:hi])

    def link(self, match: re.Match[str], at: int) -> str:
        """What a reader sees in place of link ``match``, which is at ``at`` in display."""
        if match.group("auto") is not None:
            url = match.group("auto")
            if _WEB.match(url):
                self.found.append((url, match.start(), at + 1, at + 1 + len(url), None))
            return f" {url} "
        dest = self.destination(match)
        plain = dest is None
        inner: list[_Found] = []
        text_at = at + len(match.group("bang")) + (1 if plain else 0)  # after "![" or "["
        text = self.text(*match.span("text"), inner, text_at)
        url = None if plain else _web_url(dest)
        if url is not None:
            anchor = " ".join(text.split()) or None
            self.found.append((url, match.start(), at, at + len(text), anchor))
        self.found += inner
        return f"{match.group('bang')}[{text}]" if plain else text

    def text(self, lo: int, hi: int, found: list[_Found], at: int) -> str:
        """Plain text of link text ``scan[lo:hi]``: nested links become their text."""
        parts, cursor, length = [], lo, 0
        outer, self.found = self.found, found
        for match in _links(self.scan, lo, hi):
            before = _unmark(self.scan[cursor : match.start()], keep_length=False)
            shown = self.link(match, at + length + len(before))
            parts += [before, shown]
            length += len(before) + len(shown)
            cursor = match.end()
        self.found = outer
        parts.append(_unmark(self.scan[cursor:hi], keep_length=False))
        return "".join(parts)

    def destination(self, match: re.Match[str]) -> str | None:
        """Inline destination, or a defined reference (full, collapsed or shortcut)."""
        if match.group("angle") is not None:
            return match.group("angle")
        if match.group("dest") is not None:
            return match.group("dest")
        label = match.group("label") or match.group("text")
        return self.definitions.get(_label(label))


def _links(scan: str, lo: int, hi: int) -> Iterator[re.Match[str]]:
    """Links and autolinks in ``scan[lo:hi]``, left to right, not overlapping."""
    pos = lo
    while start := _LINK_START.search(scan, pos, hi):
        at = start.start()
        if at > lo and scan[at - 1] == "\\":  # an escaped "\[" or "\<" is text
            pos = at + 1
            continue
        if at > pos and scan[at - 1] == "!":
            at -= 1
        match = _LINK.match(scan, at, hi)
        pos = match.end() if match else start.end()
        if match:
            yield match


def _masked(source: str) -> tuple[str, str]:
    """``scan`` without code; ``display`` with code text but no code or line markup."""
    text = _blank_spans(source, _fenced_blocks(source))
    scan = _INLINE_CODE.sub(lambda m: " " * len(m.group()), text)
    display = _blank_matches(_LINE_MARKUP, _INLINE_CODE.sub(_code_text, text))
    return scan, display


def _code_text(match: re.Match[str]) -> str:
    ticks = " " * len(match.group(1))
    return f"{ticks}{match.group(2)}{ticks}"


def _fenced_blocks(text: str) -> list[tuple[int, int]]:
    """Spans of fenced code blocks; an unclosed fence runs to the end, as in CommonMark."""
    blocks, pos = [], 0
    while opening := _FENCE.search(text, pos):
        fence = opening.group(1)
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.M)
        close = closing.search(text, opening.end())
        end = close.end() if close else len(text)
        blocks.append((opening.start(), end))
        pos = end
    return blocks


def _definitions(scan: str) -> tuple[dict[str, str], list[tuple[int, int]]]:
    """Reference definitions by normalised label (the first one wins), and their spans."""
    definitions: dict[str, str] = {}
    spans = []
    for match in _DEFINITION.finditer(scan):
        dest = match.group("angle") if match.group("angle") is not None else match.group("dest")
        definitions.setdefault(_label(match.group("label")), dest)
        spans.append(match.span())
    return definitions, spans


def _web_url(dest: str) -> str | None:
    """``dest`` unescaped when it is a web URL; None for #anchors, relative links, mailto."""
    # Spaces are allowed in "<...>" destinations; a browser sends them as %20.
    url = html.unescape(_ESCAPE.sub(r"\1", dest.strip())).replace(" ", "%20")
    if _WEB.match(url):
        return url
    typed = find_urls(url)  # a scheme-less "www.example.org/x"
    return url if len(typed) == 1 and typed[0].start == 0 and typed[0].end == len(url) else None


def _label(label: str) -> str:
    return " ".join(label.split()).casefold()


def _unmark(text: str, keep_length: bool = True) -> str:
    """``text`` without emphasis markers and backslash escapes."""

    def plain(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return f" {match.group('escaped')}" if keep_length else match.group("escaped")
        run, lo, hi = match.group(), match.start(), match.end()
        in_word = lo > 0 and hi < len(text) and text[lo - 1].isalnum() and text[hi].isalnum()
        if run == "~" or (in_word and "_" in run):  # "~10 km", "snake_case" are text
            return run
        return " " * len(run) if keep_length else ""

    return _MARKUP.sub(plain, text)


def _outside(
    text: str,
    spans: list[tuple[int, int]],
    change: Callable[[str], str],
    inside: Callable[[str], str] = lambda part: part,
) -> str:
    """``text`` with ``change`` applied outside the sorted ``spans``, ``inside`` in them."""
    parts, cursor = [], 0
    for lo, hi in spans:
        parts += [change(text[cursor:lo]), inside(text[lo:hi])]
        cursor = hi
    parts.append(change(text[cursor:]))
    return "".join(parts)


def _blank_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with the sorted ``spans`` made spaces, line breaks kept."""
    return _outside(text, spans, lambda part: part, _spaces)


def _spaces(text: str) -> str:
    return re.sub(r"[^\n]", " ", text)


def _blank_matches(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda m: _spaces(m.group()), text)
