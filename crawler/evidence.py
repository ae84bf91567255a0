"""What one capture shows, reduced to the facts a verdict is decided on.

Computed off the reactor (in the storage thread): the judged content is the site profile's
selection of the *rendered* DOM (never the raw HTML shell, so text that arrives by XHR
counts), normalised so clocks, counters and tokens do not count as edits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from crawler.items import CaptureItem, ProbeResult
from crawler.normalise import fingerprint, normalise, passage_present, similarity
from crawler.profiles import content_text, looks_not_found, profile_for, tombstone
from crawler.textextract import main_text

# A page this close to the host's answer for a random URL is that host's not-found page.
SOFT_404_SIMILARITY = 0.9
HTML_TYPES = ("text/html", "application/xhtml+xml", "")


@dataclass
class Evidence:
    """The judged facts of one capture."""

    answered: bool
    status: int | None
    url: str
    final_url: str | None
    permanent_redirect: bool
    content: str = ""
    fingerprint: str | None = None
    tombstone: str | None = None
    not_found: str | None = None  # why the page looks like a not-found page, if it does
    home_redirect: str | None = None  # "home page" or "section page /world/"
    passages: list[dict] = field(default_factory=list)
    error: str | None = None


def judged_content(item: CaptureItem) -> str:
    """The content a reader cites: profile selection of the rendered page, or the file's text."""
    if item.media_type in HTML_TYPES and item.dom:
        dom = item.dom.decode("utf-8", "replace")
        url = item.final_url or item.url
        return content_text(profile_for(url), dom, url)
    if item.text is not None:  # text extracted upstream (no DOM to judge)
        return item.text
    return main_text(item.media_type, item.raw or b"", "", item.final_url)


def home_or_section(original: str, final: str) -> str | None:
    """'home page' or 'section page <path>' when a redirect lands above the cited page."""
    a, b = urlsplit(original), urlsplit(final)
    site_a, site_b = _site(a.hostname), _site(b.hostname)
    if site_a != site_b and not site_b.endswith("." + site_a):
        return None
    orig_parts = [p for p in a.path.split("/") if p]
    final_parts = [p for p in b.path.split("/") if p]
    if len(orig_parts) < 1 or len(final_parts) >= len(orig_parts):
        return None
    if not final_parts:
        return "home page"
    if orig_parts[: len(final_parts)] == final_parts or len(final_parts) == 1:
        return f"section page {b.path}"
    return None


def _site(host: str | None) -> str:
    return (host or "").removeprefix("www.")


def _soft_404(ev: Evidence, probe: ProbeResult | None) -> str | None:
    if probe is None or probe.status != 200 or not probe.text or not ev.content:
        return None
    score = similarity(ev.content, probe.text)
    if score >= SOFT_404_SIMILARITY:
        return f"soft 404: same as this site's page for a made-up URL ({score:.0%} alike)"
    return None


def gather(item: CaptureItem, passages: list[str]) -> Evidence:
    """Reduce ``item`` (and its host probe) to the facts the verdict needs."""
    chain = item.redirect_chain
    ev = Evidence(
        answered=item.answered,
        status=item.http_status,
        url=item.url,
        final_url=item.final_url,
        permanent_redirect=bool(chain) and chain[0].get("status") in (301, 308),
        error=item.error,
    )
    if not item.answered:
        return ev
    ev.content = judged_content(item)
    has_text = bool(normalise(ev.content).strip())
    ev.fingerprint = fingerprint(ev.content) if has_text else _raw_fingerprint(item)
    if item.media_type in HTML_TYPES and item.dom:
        dom = item.dom.decode("utf-8", "replace")
        url = item.final_url or item.url
        profile = profile_for(url)
        ev.tombstone = tombstone(profile, dom, url)
        if looks_not_found(profile, dom, url):
            ev.not_found = "soft 404: the page says it was not found"
    ev.not_found = ev.not_found or _soft_404(ev, item.probe)
    if item.final_url and item.final_url != item.url:
        ev.home_redirect = home_or_section(item.url, item.final_url)
    for passage in passages:
        present, score = passage_present(passage, ev.content)
        ev.passages.append({"passage": passage[:300], "present": present, "score": round(score, 3)})
    return ev


def _raw_fingerprint(item: CaptureItem) -> str | None:
    return hashlib.sha256(item.raw).hexdigest() if item.raw is not None else None
