"""Reading a rendered page through its profile: cited content, tombstones, soft 404s."""

from __future__ import annotations

import lxml.html
import trafilatura
from lxml.html import HtmlElement

from crawler.profiles import generic
from crawler.profiles.base import Profile
from crawler.profiles.dom import drop_noise, parse, select, text_of, tidy, title_and_headings

_SHORT_PAGE = 80  # words: a soft-404 page says little, an article about one says a lot


def _scope(profile: Profile, root: HtmlElement, url: str | None) -> HtmlElement | None:
    """Where the cited item is: the profile's focus, or the whole page; None if absent."""
    return root if profile.focus is None else profile.focus(root, url)


def _text(el: HtmlElement) -> str:
    # A <meta> selected as content (a description) reads as its content attribute.
    return tidy(el.get("content", "")) if el.tag == "meta" else text_of(el)


def _selected(profile: Profile, scope: HtmlElement) -> list[HtmlElement]:
    """The first content selector whose every comma part matches with text.

    Each part gives its first match: "h1, .description" is the headline plus one
    description, in that order.
    """
    for selector in profile.content_selectors:
        found = []
        for part in selector.split(","):
            first = next((el for el in select(scope, part.strip()) if _text(el)), None)
            if first is None:
                break
            found.append(first)
        else:
            if found:
                return found
    return []


def _content(profile: Profile, root: HtmlElement, url: str | None, recall: bool) -> str:
    scope = _scope(profile, root, url)
    if scope is None:
        return ""  # the page does not show the cited item (a thread without it, a tombstone)
    chosen = _selected(profile, scope)
    drop_noise(root, profile.noise_selectors, keep=chosen or [scope])
    if chosen:
        return tidy("\n".join(_text(el) for el in chosen))
    if scope is not root:
        return text_of(scope)  # the focused item without its furniture (a photo-only tweet)
    if recall:
        html = lxml.html.tostring(root, encoding="unicode")
        text = trafilatura.extract(
            html, url=url, include_comments=False, include_tables=True, favor_recall=True
        )
        if text:
            return tidy(text)
    body = root.find("body")
    return text_of(body if body is not None else root)


def content_text(profile: Profile, dom: str, url: str | None = None) -> str:
    """The cited content of a rendered page as lines of text, noise removed."""
    root = parse(dom)
    return "" if root is None else _content(profile, root, url, recall=True)


def _shows_item(profile: Profile, root: HtmlElement, url: str | None) -> bool:
    """The profile's focus finds the cited item: the page shows it, whatever else it says."""
    return profile.focus is not None and profile.focus(root, url) is not None


def tombstone(profile: Profile, dom: str, url: str | None = None) -> str | None:
    """ "tombstone: <kind>" when the rendered page says the cited item is gone, else None."""
    root = parse(dom)
    if root is None or not profile.tombstones:
        return None
    # A thread can show a deleted parent's tombstone above a live cited reply.
    if _shows_item(profile, root, url):
        return None
    body = root.find("body")
    text = " ".join(text_of(body if body is not None else root).split())
    for reason, pattern in profile.tombstones:
        if pattern.search(text):
            return f"tombstone: {reason}"
    return None


def looks_not_found(profile: Profile, dom: str, url: str | None = None) -> bool:
    """Does the page read as a "not found" page (a soft 404) despite its status?"""
    root = parse(dom)
    # A tweet's page title quotes the tweet: "… on X: "page not found again"".
    if root is None or _shows_item(profile, root, url):
        return False
    heads = title_and_headings(root)
    markers = profile.not_found_markers
    if profile is not generic.PROFILE:
        markers = (*markers, *generic.NOT_FOUND)
    if any(m.search(h) for m in markers for h in heads):
        return True
    # In the page text the markers count only on a short page.
    text = _content(profile, root, None, recall=False)
    return len(text.split()) <= _SHORT_PAGE and any(m.search(text) for m in markers)
