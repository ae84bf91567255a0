"""Decide the verdict of one capture from its evidence and the source's history.

Rules, in order (the first that applies wins):
1. no usable answer (DNS, refused, timeout, TLS, redirect loop), 5xx, 429, 401/403 →
   ``unreachable``: never counted as a deletion;
2. 404/410/451 → ``gone``; a tombstone page, a soft 404, a redirect to the home or a
   section page → ``gone``, named by kind;
3. no earlier answered capture → ``new``; the last answered one was ``gone`` → ``restored``;
4. a first permanent redirect to another URL with the same content → ``moved``;
5. the same normalised content → ``unchanged``; content equal to a version seen in the
   last few captures (an A/B test flipping) → ``unchanged``, said so, reported only once;
6. otherwise ``changed``, with what changed and how much; a cited passage that was
   present and is not any more is always ``changed``, and the reason says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from crawler.evidence import Evidence
from crawler.normalise import change_summary, similarity

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
# How many earlier answered versions count as "recent" for A/B flip detection.
RECENT_VERSIONS = 5
# Content this similar to the old one still counts as the same page when it moves.
MOVE_SIMILARITY = 0.95


@dataclass(frozen=True)
class Verdict:
    name: str
    reason: str
    similarity: float | None = None


@dataclass(frozen=True)
class Earlier:
    """One earlier answered capture, as the verdict needs it."""

    id: str
    verdict: str
    fingerprint: str | None
    final_url: str | None


def _unreachable(ev: Evidence) -> Verdict | None:
    if not ev.answered:
        return Verdict(UNREACHABLE, ev.error or "no response")
    status = ev.status or 0
    if status >= 500 or status == 429:
        return Verdict(UNREACHABLE, f"HTTP {status}")
    if status in (401, 403, 407):
        return Verdict(UNREACHABLE, f"HTTP {status}: access refused, not a deletion")
    return None


def _deleted(ev: Evidence) -> Verdict | None:
    status = ev.status or 0
    if status in (404, 410):
        return Verdict(GONE, f"HTTP {status}")
    if status == 451:
        return Verdict(GONE, "HTTP 451: unavailable for legal reasons")
    if status >= 400:
        return Verdict(UNREACHABLE, f"HTTP {status}")
    if ev.tombstone:
        return Verdict(GONE, ev.tombstone)
    if ev.home_redirect:
        return Verdict(GONE, f"redirected to the {ev.home_redirect}")
    if ev.not_found:
        return Verdict(GONE, ev.not_found)
    return None


@dataclass(frozen=True)
class LastContent:
    """Loaders for what the last answered capture held; read only when content differs."""

    text: Callable[[], str]
    passages_present: Callable[[], frozenset[str]]


def decide(ev: Evidence, earlier: list[Earlier], last_content: LastContent) -> Verdict:
    """The verdict of a capture; ``earlier`` holds answered captures, oldest first."""
    verdict = _unreachable(ev) or _deleted(ev)
    if verdict is not None:
        return verdict
    if not earlier:
        return Verdict(NEW, f"first capture, HTTP {ev.status}")
    last = earlier[-1]
    if last.verdict == GONE:
        return Verdict(RESTORED, f"available again after {_gone_since(earlier)}, HTTP {ev.status}")
    if ev.fingerprint == last.fingerprint:
        if ev.permanent_redirect and ev.final_url != last.final_url:
            return Verdict(
                MOVED, f"permanently redirected to {ev.final_url}, content unchanged", 1.0
            )
        return Verdict(UNCHANGED, "content identical (noise ignored)", 1.0)
    old = last_content.text()
    score = similarity(old, ev.content)
    was_present = last_content.passages_present()
    lost = [p["passage"] for p in ev.passages if not p["present"] and p["passage"] in was_present]
    if (
        ev.permanent_redirect
        and ev.final_url != last.final_url
        and score >= MOVE_SIMILARITY
        and not lost
    ):
        return Verdict(
            MOVED, f"permanently redirected to {ev.final_url}, content {alike(score)}", score
        )
    flip = next(
        (e for e in reversed(earlier[-RECENT_VERSIONS:-1]) if e.fingerprint == ev.fingerprint), None
    )
    if flip is not None and not lost:
        return Verdict(
            UNCHANGED,
            f"back to the version of capture {flip.id} (two versions "
            "alternating, already reported)",
            score,
        )
    what = change_summary(old, ev.content) or "content changed"
    reason = f"main text changed: {what} ({alike(score)})"
    if lost:
        reason = f"cited passage no longer present; {reason}"
    return Verdict(CHANGED, reason, score)


def alike(score: float) -> str:
    """'97% alike', never '100% alike' for texts that differ (a tiny edit rounds down)."""
    percent = math.floor(score * 100) if score < 1 else 100
    return f"{percent}% alike"


def _gone_since(earlier: list[Earlier]) -> str:
    count = 0
    for e in reversed(earlier):
        if e.verdict != GONE:
            break
        count += 1
    return "1 capture gone" if count == 1 else f"{count} captures gone"
