"""Rendered-DOM helpers: parse, strip noise, and read text with paragraph breaks kept."""

from __future__ import annotations

import re

import lxml.etree
import lxml.html
from cssselect import SelectorError
from lxml.html import HtmlElement

# Never text a reader reads.
_NEVER_TEXT = ("script", "style", "noscript", "template", "svg")
# Page furniture around the cited content, on every site.
GENERIC_NOISE = ("nav", "footer", "aside", "iframe")
# Hidden elements. Only a guess: an open dialog sets aria-hidden on the whole app behind it.
_HIDDEN = ("[hidden]", '[aria-hidden="true"]')
# Class or id words that name furniture. Matched at the start of a word of the attribute
# ("ad-slot", "sidebar_ad", "ShareBar") so that "lead-para" or "masthead-title" stay.
_NOISE_NAME = re.compile(
    r"(?:^|[-_\s])(?:ads?(?:[-_\s]|$)|advert|sponsor|promo|related|recommend|cookie|consent"
    r"|newsletter|share|sharing|social|comments?(?:[-_\s]|$))"
)
_DISPLAY_NONE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
# Elements whose end is a line break in what a reader sees.
# fmt: off
_BLOCKS = frozenset((
    "address", "article", "aside", "blockquote", "dd", "details", "div", "dl", "dt",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tr", "ul",
))
# fmt: on
_EMOJI_ALT = 8  # chars; X draws emoji as <img alt="😂">, and the alt is what a reader sees


def _is_emoji(alt: str) -> bool:
    # Short and without letters or digits: an emoji, not a description ("Image").
    return 0 < len(alt) <= _EMOJI_ALT and not any(c.isalnum() for c in alt)


def parse(dom: str) -> HtmlElement | None:
    """The document tree, or None when there is nothing to parse."""
    if not dom or not dom.strip():
        return None
    try:
        return lxml.html.document_fromstring(dom)
    except (ValueError, lxml.etree.ParserError):
        return None


def select(root: HtmlElement, selector: str) -> list[HtmlElement]:
    """CSS matches, or none for a selector cssselect cannot read."""
    try:
        return root.cssselect(selector)
    except (SelectorError, lxml.etree.XPathError):
        return []


def drop_noise(root: HtmlElement, selectors: tuple[str, ...], keep: list[HtmlElement]) -> None:
    """Remove furniture in place; ``keep`` (the cited content) and its ancestors stay.

    Tags and the profile's selectors are sure signs. Class/id words and hidden flags are
    guesses, so they never remove an element holding the page's h1 or main landmark
    (a wrapper "page social-enabled", an app aria-hidden behind a cookie dialog).
    """
    kept = _with_ancestors(keep)
    for el in list(root.iter(*_NEVER_TEXT)):
        if el not in kept:
            el.drop_tree()
    sure = [el for sel in (*GENERIC_NOISE, *selectors) for el in select(root, sel)]
    guessed = [el for sel in _HIDDEN for el in select(root, sel)]
    for el in root.iter():
        if not isinstance(el.tag, str) or el.tag in ("html", "body", "main"):
            continue
        names = f"{el.get('class', '')} {el.get('id', '')}".lower()
        if _NOISE_NAME.search(names) or _DISPLAY_NONE.search(el.get("style", "")):
            guessed.append(el)
    landmarks = _with_ancestors(root.xpath("//h1|//main|//*[@role='main']"))
    for el in sure:
        if el not in kept and el.getparent() is not None:
            el.drop_tree()
    for el in guessed:
        if el not in kept and el not in landmarks and el.getparent() is not None:
            el.drop_tree()


def _with_ancestors(elements: list[HtmlElement]) -> set[HtmlElement]:
    out: set[HtmlElement] = set()
    for el in elements:
        out.add(el)
        out.update(el.iterancestors())
    return out


def text_of(el: HtmlElement) -> str:
    """Text with one line per block element and <br>, emoji images as their alt text."""
    parts: list[str] = []

    def walk(node: HtmlElement) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag in _NEVER_TEXT:
            return
        block = tag in _BLOCKS
        if block:
            parts.append("\n")
        if tag == "br":
            parts.append("\n")
        elif tag in ("td", "th"):
            parts.append(" ")  # cells of a row read apart
        elif tag == "img" and _is_emoji(node.get("alt", "")):
            parts.append(node.get("alt"))
        if tag and node.text:
            parts.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                parts.append(child.tail)
        if block:
            parts.append("\n")

    walk(el)
    return tidy("".join(parts))


def tidy(text: str) -> str:
    """One line per non-empty line, spaces collapsed."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def title_and_headings(root: HtmlElement) -> list[str]:
    """The <title> and each <h1>, as text."""
    return [t for t in (text_of(el) for el in root.iter("title", "h1")) if t]
