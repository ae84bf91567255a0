"""US embassy sites (*.usembassy.gov, WordPress): the alert's title and entry content."""

from __future__ import annotations

import re

from crawler.profiles.base import Profile

_APOS = "['\u2019]"

PROFILE = Profile(
    name="usembassy",
    hosts=("usembassy.gov",),
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
