"""The Profile: what one kind of site needs for reading its cited content."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from lxml.html import HtmlElement

# A profile's focus picks the element of the rendered page that is the cited item (the
# focal tweet among a thread's tweets); None when the page does not show it.
Focus = Callable[[HtmlElement, str | None], HtmlElement | None]
# A profile's own media finder: (url, kind) of the media in the cited content that the
# generic rules miss (crawler/media/find.py), given the content element and the page URL.
MediaFinder = Callable[[HtmlElement, str], list[tuple[str, str]]]


@dataclass(frozen=True)
class Profile:
    """Selectors and markers of one kind of site; the generic profile matches every URL.

    content_selectors: CSS, tried in order; the first whose every comma part matches an
    element with text wins, and each part contributes its first such match ("h1, .desc").
    noise_selectors: removed before extraction, on top of the generic furniture rules.
    tombstones: (kind, pattern) searched in the visible text of the page.
    not_found_markers: soft-404 wording in <title>/<h1>, and in the text of a short page.
    focus: picks the cited item's element (the focal tweet); a page where it finds the
    item has no tombstone and is no soft 404, whatever else the page says.
    media: finds the site's own media in the cited content (a tweet's photos).
    """

    name: str
    content_selectors: tuple[str, ...] = ()
    noise_selectors: tuple[str, ...] = ()
    tombstones: tuple[tuple[str, re.Pattern], ...] = ()
    not_found_markers: tuple[re.Pattern, ...] = ()
    hosts: tuple[str, ...] = ()  # host or parent domain ("usembassy.gov"); () = any host
    path: re.Pattern | None = None  # searched at the start of the URL path
    focus: Focus | None = None
    media: MediaFinder | None = None

    def matches(self, url: str) -> bool:
        """Does this profile apply to ``url``?"""
        try:
            parts = urlsplit(url if "//" in url else f"//{url}")
            host = (parts.hostname or "").rstrip(".").lower()
        except ValueError:
            return False
        if self.hosts and not any(host == h or host.endswith("." + h) for h in self.hosts):
            return False
        return self.path is None or self.path.match(parts.path or "/") is not None
