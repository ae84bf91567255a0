"""The generic profile: any page; main text by trafilatura, soft 404s by title and h1."""

from __future__ import annotations

import re

from crawler.profiles.base import Profile

_APOS = "['\u2019]"

# Worded tightly: these are searched in every page's <title> and <h1>, and a news headline
# ("Missing hiker not found") must not read as a soft 404.
NOT_FOUND = (
    # "404", "Error 404", "404 Not Found", alone or before a site name ("404 | Example");
    # not a headline that starts with it ("Error 404: how links rot").
    re.compile(
        r"^\W*(?:error\s*)?404(?:\s*(?:error|page|not found|page not found))?\W*"
        r"(?:$|[|\u2013\u2014\u00b7]|\s-\s)",
        re.I,
    ),
    re.compile(r"\b404\W+(?:page\s+)?not found\b|\bnot found\W+\(?404\b", re.I),
    re.compile(r"^\W*(?:page\s+|file\s+|content\s+)?not found\b", re.I),
    re.compile(r"\b(?:page|file|content|article|story|resource|url|document)\s+not found\b", re.I),
    re.compile(rf"\bpage (?:does not|doesn{_APOS}t|did not|didn{_APOS}t) exist\b", re.I),
    re.compile(
        r"\b(?:page|content|article|story|video|post|item|link)\s+(?:you requested\s+)?"
        r"(?:is\s+)?no longer available\b",
        re.I,
    ),
    re.compile(
        r"\b(?:page|content|article|story|video|post|item)\s+(?:\w+\s+){0,2}"
        r"(?:has been|was)\s+(?:removed|deleted|taken down)\b",
        re.I,
    ),
    re.compile(
        r"\b(?:page|content|article|story|resource|file|url|document)\b.{0,40}"
        r"\bcould not be found\b",
        re.I,
    ),
    re.compile(rf"\bthis (?:page|content) (?:isn{_APOS}t|is not) available\b", re.I),
)

PROFILE = Profile(name="generic", not_found_markers=NOT_FOUND)
