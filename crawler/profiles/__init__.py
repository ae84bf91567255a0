"""Site profiles: how to read the cited content of a rendered page, one module per site.

``profile_for(url)`` picks the profile; ``content_text``, ``tombstone`` and
``looks_not_found`` read a rendered DOM through it.
"""

from __future__ import annotations

from crawler.profiles import cnn, generic, twitter, usembassy
from crawler.profiles.base import Profile
from crawler.profiles.extract import content_text, looks_not_found, tombstone

# Most specific first; the generic profile is the fallback, never listed here.
PROFILES: tuple[Profile, ...] = (twitter.PROFILE, cnn.PROFILE, usembassy.PROFILE)
GENERIC = generic.PROFILE


def profile_for(url: str) -> Profile:
    """The first profile that matches ``url``, else the generic one."""
    return next((p for p in PROFILES if p.matches(url)), GENERIC)


__all__ = [
    "GENERIC",
    "PROFILES",
    "Profile",
    "content_text",
    "looks_not_found",
    "profile_for",
    "tombstone",
]
