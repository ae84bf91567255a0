"""What a difference in a page's media means for its verdict.

Media are compared with those of the source's last answered capture, item by item:
- the same bytes (sha256), or a copy a cheap check re-used, is the same item, whatever
  URL or token it was served under;
- other bytes of the same pictures (frame hashes alike, duration within half a second or
  2 %) are the same item re-encoded;
- a kept item with no counterpart is "replaced" when the page now has other media of that
  kind, else "removed" (the page dropped it, or its URL answers 404/410);
- an item whose download failed or was skipped (timeout, over a cap) proves nothing:
  it is recorded with its reason and never turns the page's verdict into a change.
"""

from __future__ import annotations

from crawler.media.model import KEPT
from crawler.media.probe import alike
from crawler.verdict import CHANGED, MOVED, UNCHANGED, Verdict

NOUNS = {"video": "video", "audio": "audio", "image": "photo", "document": "attachment"}
_UNDECIDED = ("failed", "skipped")


def _duration(entry: dict) -> float | None:
    return (entry.get("probe") or {}).get("duration")


def same_media(old: dict, new: dict) -> bool:
    """Whether two kept entries hold the same media."""
    if old.get("sha256") and old.get("sha256") == new.get("sha256"):
        return True
    if old.get("kind") != new.get("kind") or not alike(
        old.get("frames") or [], new.get("frames") or []
    ):
        return False
    a, b = _duration(old), _duration(new)
    if a is None or b is None:
        return a is None and b is None  # pictures: one frame each, no duration
    return abs(a - b) <= max(0.5, 0.02 * max(a, b))


def media_changes(previous: list[dict], current: list[dict]) -> list[str]:
    """What changed in the media, as reasons ("video replaced: URL"); [] when nothing did."""
    fresh = [c for c in current if c.get("status") in KEPT]
    undecided = [c for c in current if c.get("status") in _UNDECIDED]
    changes = []
    for old in (p for p in previous if p.get("status") in KEPT):
        noun = NOUNS.get(old.get("kind", ""), "media")
        match = next((c for c in fresh if same_media(old, c)), None)
        if match is not None:
            fresh.remove(match)
            continue
        if any(
            u.get("url") == old.get("url") or u.get("kind") == old.get("kind") for u in undecided
        ):
            continue  # could not be fetched this time: no evidence either way
        other = next((c for c in fresh if c.get("kind") == old.get("kind")), None)
        if other is not None:
            fresh.remove(other)
            changes.append(f"{noun} replaced: {other.get('url')}")
        else:
            changes.append(f"{noun} removed: {old.get('url')}")
    changes += [f"{NOUNS.get(c.get('kind', ''), 'media')} added: {c.get('url')}" for c in fresh]
    return changes


def with_media(verdict: Verdict, previous: list[dict] | None, current: list[dict]) -> Verdict:
    """The page's verdict, turned ``changed`` when its media changed.

    ``previous`` is None when the last answered capture predates media capture: nothing
    to compare with, so nothing is reported.
    """
    if previous is None or verdict.name not in (UNCHANGED, CHANGED, MOVED):
        return verdict
    changes = media_changes(previous, current)
    if not changes:
        return verdict
    reason = "; ".join(changes)
    if verdict.name == CHANGED:
        reason = f"{reason}; {verdict.reason}"
    return Verdict(CHANGED, reason, verdict.similarity)
