"""Tiered re-checks: a cheap fetch decides whether a source needs a full render again.

Most re-checks find nothing changed. For a source whose content does not depend on
JavaScript, a plain HTTP request (conditional on the last capture's ETag/Last-Modified)
tells as much as a render: a 304, the same bytes, or the same judged text means
`unchanged`, stored as a small record that points at the capture it matched. Anything
else (another status, a redirect elsewhere, other text, an error) falls through to the
full browser capture, so the cheap tier can only confirm "unchanged", never decide a change.

Whether a source's content needs JavaScript is decided at each full render: the judged
text of the raw HTML is compared with the judged text of the rendered DOM (both through
the same site profile and normalisation the verdict uses). Equal: the page's content
is in its HTML, and the next re-check may be cheap. Different (text written by a script,
an XHR-loaded body, a JS-only shell): every re-check renders. A full render also happens
whenever the last one is older than ``[crawl] full_render_days``, so a page that starts
depending on JavaScript is found within that bound. See docs/rechecks.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from crawler.evidence import HTML_TYPES, judged_content
from crawler.headerfields import validators
from crawler.items import CaptureItem
from crawler.normalise import fingerprint, normalise
from storage.ids import parse_rfc3339
from storage.index import CaptureRow, Index

# Verdicts after which the page is known to be there as cited: a re-check may be cheap.
SETTLED_VERDICTS = frozenset({"new", "unchanged", "changed", "restored"})


@dataclass(frozen=True)
class RecheckBasis:
    """What a cheap re-check compares with: the source's latest capture, if it qualifies."""

    capture_id: str
    final_url: str
    raw_sha256: str
    text_sha256: str
    etag: str | None
    last_modified: str | None
    full_render_at: str  # when the page was last rendered in full

    def conditional_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


def basis_for(
    row: CaptureRow | None, now: datetime, full_render_every: timedelta
) -> RecheckBasis | None:
    """The basis of a cheap re-check after ``row``, or None when the source must render.

    ``row`` is the source's latest capture: a full capture or an earlier cheap re-check
    (whose rendering facts carry the last full render's, updated with newer validators).
    """
    if row is None or row.verdict not in SETTLED_VERDICTS or row.http_status not in (200, 304):
        return None
    facts = row.rendering or {}
    if facts.get("needs_js", True) or not row.final_url or not row.text_sha256:
        return None
    if facts.get("media"):
        return None  # the media must be checked too: only a render finds them
    raw_sha256, full_render_at = facts.get("raw_sha256"), facts.get("full_render_at")
    if not raw_sha256 or not full_render_at:
        return None
    if now - parse_rfc3339(full_render_at) >= full_render_every:
        return None
    return RecheckBasis(
        capture_id=row.id,
        final_url=row.final_url,
        raw_sha256=raw_sha256,
        text_sha256=row.text_sha256,
        etag=facts.get("etag"),
        last_modified=facts.get("last_modified"),
        full_render_at=full_render_at,
    )


def bases(
    index: Index, source_ids: Iterable[str], now: datetime, full_render_every: timedelta
) -> dict[str, RecheckBasis]:
    """source id -> basis, for the sources whose next re-check may be cheap."""
    found = {}
    for sid in source_ids:
        basis = basis_for(index.latest_capture(sid), now, full_render_every)
        if basis is not None:
            found[sid] = basis
    return found


def text_fingerprint(url: str, media_type: str, body: bytes) -> str | None:
    """The judged text's fingerprint of a response body taken as the page itself."""
    twin = CaptureItem(source_id="", url=url, captured_at="", final_url=url)
    twin.media_type, twin.raw = media_type, body
    if media_type in HTML_TYPES:
        twin.dom = body
    content = judged_content(twin)
    return fingerprint(content) if normalise(content).strip() else None


def rendering_facts(item: CaptureItem, text_sha256: str | None) -> dict:
    """What a full capture records for the next re-check: does its content need script?"""
    facts: dict = {"full_render_at": item.captured_at, "needs_js": True}
    if item.http_status == 200 and item.raw is not None and text_sha256:
        if item.media_type in HTML_TYPES and item.dom is not None:
            raw_text = text_fingerprint(item.final_url or item.url, item.media_type, item.raw)
            facts["needs_js"] = raw_text != text_sha256
        else:
            facts["needs_js"] = False  # a PDF, an image, JSON: its bytes are its content
        facts["raw_sha256"] = hashlib.sha256(item.raw).hexdigest()
    return {**facts, **validators(item.headers)}


def recheck_facts(earlier: dict, item: CaptureItem) -> dict:
    """A cheap re-check's rendering facts: the last full render's, with what it fetched."""
    facts = {**earlier, **{k: v for k, v in validators(item.headers).items() if v}}
    if item.raw is not None:
        facts["raw_sha256"] = hashlib.sha256(item.raw).hexdigest()
    return facts


def cheap_outcome(
    basis: RecheckBasis, status: int, final_url: str, body: bytes, media_type: str
) -> str | None:
    """Why a cheap fetch proves the source unchanged, or None: render it in full."""
    if status == 304:
        return f"not modified since capture {basis.capture_id} (HTTP 304)"
    if status != 200 or final_url != basis.final_url:
        return None
    if hashlib.sha256(body).hexdigest() == basis.raw_sha256:
        return f"same bytes as capture {basis.capture_id}"
    if text_fingerprint(final_url, media_type, body) == basis.text_sha256:
        return f"same text as capture {basis.capture_id}"
    return None


def with_basis(targets: Sequence, found: dict[str, RecheckBasis]) -> list:
    """The targets, each carrying its basis (``CaptureTarget.basis``) where it has one."""
    return [replace(t, basis=found.get(t.source_id)) for t in targets]
