"""US embassy sites (*.usembassy.gov, WordPress): the alert's title and entry content."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from lxml.html import HtmlElement

from crawler.profiles.base import Profile
from crawler.profiles.dom import select

_APOS = "['\u2019]"


def alert_attachments(content: HtmlElement, url: str) -> list[tuple[str, str]]:
    """The PDFs an alert links and the images it shows in its entry content."""
    found = []
    for entry in select(content, ".entry-content"):
        for link in entry.iter("a"):
            href = urljoin(url, link.get("href", ""))
            if urlsplit(href).path.lower().endswith(".pdf"):
                found.append((href, "document"))
        found += [(urljoin(url, img.get("src", "")), "image") for img in entry.iter("img")]
    return found


PROFILE = Profile(
    name="usembassy",
    hosts=("usembassy.gov",),
    media=alert_attachments,
    content_selectors=(
        "h1.entry-title, article .entry-content",
        "h1.entry-title, .entry-content",
        ".entry-content",
    ),
    noise_selectors=(
        "#sidebar",
        ".sidebar",
        ".widget-area",
        ".sharedaddy",
        ".share",
        ".related",
        ".jp-relatedposts",
        ".breadcrumbs",
    ),
    not_found_markers=(
        re.compile(r"\bpage not found\b", re.I),
        re.compile(rf"\boops!? that page can{_APOS}t be found\b", re.I),
        re.compile(r"^\W*nothing found\b", re.I | re.M),
    ),
)
