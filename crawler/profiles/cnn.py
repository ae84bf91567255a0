"""CNN video pages: the headline and the video's description; the related rails are noise."""

from __future__ import annotations

import re

from crawler.profiles.base import Profile

_DESCRIPTION = (
    ".video-resource__description",
    '[data-editable="description"]',
    ".media__video-description",
)

PROFILE = Profile(
    name="cnn-video",
    hosts=("cnn.com",),
    path=re.compile(r"/videos?/"),
    # The headline plus one description; the meta description when the page draws none.
    content_selectors=(
        *(f"h1, {d}" for d in _DESCRIPTION),
        'h1, meta[name="description"]',
        *_DESCRIPTION,
    ),
    noise_selectors=(
        ".video-playlist",
        "[data-zone-label]",
        ".zn-body__read-more",
        ".related",
        ".video-carousel",
        ".carousel",
        '[data-section="related"]',
    ),
    tombstones=(
        (
            "video removed",
            re.compile(
                r"this video is no longer available|video is (?:unavailable|no longer available)"
                r"|video not available",
                re.I,
            ),
        ),
    ),
)
