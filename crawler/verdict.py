"""Decide the verdict of one capture against the source's earlier captures.

This is the first, plain rule set: the answer's HTTP status, then a hash of the
normalised main text (NFKC, whitespace collapsed). Noise masks and deletion detection
beyond HTTP status come later; they plug in here.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from crawler.items import CaptureItem

NEW, UNCHANGED, CHANGED, MOVED, GONE, RESTORED, UNREACHABLE = (
    "new",
    "unchanged",
    "changed",
    "moved",
    "gone",
    "restored",
    "unreachable",
)
VERDICTS = (NEW, UNCHANGED, CHANGED, MOVED, GONE, RESTORED, UNREACHABLE)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Verdict:
    name: str
    reason: str


@dataclass(frozen=True)
class Previous:
    """What the verdict needs to know of the last answered capture."""

    verdict: str
    content_sha256: str | None


def normalise_text(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def content_fingerprint(item: CaptureItem) -> str | None:
    """sha256 of what a reader sees: normalised main text, else the raw body."""
    text = normalise_text(item.text or "")
    if text:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
    if item.raw is not None:
        return hashlib.sha256(item.raw).hexdigest()
    return None


def decide(item: CaptureItem, previous: Previous | None) -> Verdict:
    """The verdict of ``item``; ``previous`` is the last capture that got an answer."""
    if not item.answered:
        return Verdict(UNREACHABLE, item.error or "no response")
    status = item.http_status or 0
    if status >= 500 or status == 429:
        return Verdict(UNREACHABLE, f"HTTP {status}")
    if status in (404, 410):
        return Verdict(GONE, f"HTTP {status}")
    if status >= 400:
        return Verdict(UNREACHABLE, f"HTTP {status}")
    if previous is None:
        return Verdict(NEW, f"first capture, HTTP {status}")
    if previous.verdict == GONE:
        return Verdict(RESTORED, f"available again, HTTP {status}")
    if content_fingerprint(item) == previous.content_sha256:
        return Verdict(UNCHANGED, "main text identical")
    return Verdict(CHANGED, "main text changed")
