"""Store one capture: blobs first, then its manifest, then the index row.

The order is what keeps the archive consistent through a crash: a manifest is written only
once every blob it names is stored, and the index only learns of a manifest that exists,
so an interruption leaves at most unreferenced blobs.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

from crawler.errors import IntegrityError
from crawler.evidence import Evidence, gather
from crawler.items import CaptureItem
from crawler.media.judge import with_media
from crawler.media.keep import keep_media
from crawler.recheck import recheck_facts, rendering_facts
from crawler.schedule import Planner
from crawler.verdict import UNREACHABLE, Earlier, LastContent, Verdict, decide
from storage.archive import Archive, StoredManifest
from storage.ids import format_rfc3339, new_capture_id, parse_rfc3339
from storage.index import CaptureRow, Index

MANIFEST_SCHEMA = 1
ARTIFACT_MEDIA_TYPES = {
    "dom": "text/html; charset=utf-8",
    "screenshot": "image/png",
    "text": "text/plain; charset=utf-8",
    "warc": "application/warc",
}


def _software() -> str:
    try:
        return f"citearchive {version('citearchive')}"
    except PackageNotFoundError:
        return "citearchive"


def _history(archive: Archive, captures: list[CaptureRow]) -> tuple[list[Earlier], LastContent]:
    """The source's answered captures, and lazy loaders for the last one's content."""
    rows = [r for r in captures if r.verdict != UNREACHABLE]
    earlier = [Earlier(r.id, r.verdict, r.text_sha256, r.final_url) for r in rows]
    last = rows[-1] if rows else None

    def text() -> str:
        if last is None or "text" not in last.artifacts:
            return ""
        return archive.get_blob(last.artifacts["text"]["sha256"]).decode("utf-8", "replace")

    def passages_present() -> frozenset[str]:
        if last is None:
            return frozenset()
        manifest = archive.read_manifest(last.manifest_key).manifest
        return frozenset(p["passage"] for p in manifest.get("passages", []) if p.get("present"))

    return earlier, LastContent(text, passages_present)


_QUOTED = re.compile(r"[\u201c\"]([^\u201c\u201d\"]{12,})[\u201d\"]")


def checkable(passage: str) -> list[str]:
    """What of a citing passage the cited page should still contain.

    A citing sentence paraphrases ("The embassy warned that ..."); only what it quotes is
    the source's own words. Without quotation marks the passage is checked whole (an
    embedded tweet's passage is the tweet's text).
    """
    quotes = [q.strip() for q in _QUOTED.findall(passage) if len(q.split()) >= 4]
    return quotes or [passage]


def cited_passages(index: Index, source_id: str) -> list[str]:
    """The passages that citing documents quote from this source, once each."""
    source = index.get_source(source_id)
    found = [
        q
        for c in (source.citations if source else [])
        if c.get("passage")
        for q in checkable(c["passage"])
    ]
    return list(dict.fromkeys(found))


def _artifacts(item: CaptureItem, ev: Evidence) -> dict[str, bytes]:
    found = {
        "raw": item.raw,
        "dom": item.dom,
        "screenshot": item.screenshot,
        # The judged content: what the verdict compared and what `diff` shows.
        "text": ev.content.encode("utf-8") if item.answered else None,
        "warc": item.warc,
    }
    return {name: data for name, data in found.items() if data is not None}


def _store_artifact(archive: Archive, item: CaptureItem, name: str, data: bytes) -> dict:
    """Store one artifact's bytes (once: blobs are content-addressed); its manifest entry."""
    ref = archive.put_blob(data)
    if name == "raw":
        media_type = item.media_type or "application/octet-stream"
    else:
        media_type = ARTIFACT_MEDIA_TYPES[name]
    return {"sha256": ref.sha256, "size": ref.size, "media_type": media_type}


def _manifest_head(item: CaptureItem) -> dict:
    """What every manifest starts with: which capture of which source, and the answer."""
    return {
        "schema": MANIFEST_SCHEMA,
        "id": new_capture_id(),
        "source_id": item.source_id,
        "url": item.url,
        "captured_at": item.captured_at,
        "final_url": item.final_url,
        "http_status": item.http_status,
        "headers": [list(h) for h in item.headers],
    }


def build_manifest(
    item: CaptureItem, ev: Evidence, verdict: Verdict, artifacts: dict[str, dict]
) -> dict:
    return {
        **_manifest_head(item),
        "redirect_chain": item.redirect_chain,
        "media_type": item.media_type,
        "verdict": verdict.name,
        "reason": verdict.reason,
        "error": item.error,
        "refused": item.refused,
        "resources": item.resources,
        "timings": item.timings,
        "artifacts": artifacts,
        "fingerprints": {"text_sha256": ev.fingerprint},
        "similarity": verdict.similarity,
        "passages": ev.passages,
        "evidence": {
            "tombstone": ev.tombstone,
            "not_found": ev.not_found,
            "home_redirect": ev.home_redirect,
            "probe": None
            if item.probe is None
            else {
                "origin": item.probe.origin,
                "status": item.probe.status,
                "probed_at": item.probe.probed_at,
            },
        },
        "software": _software(),
    }


def store_capture(
    archive: Archive, index: Index, item: CaptureItem, planner: Planner | None = None
) -> StoredManifest:
    """Judge ``item`` against the source's history and store it; returns the manifest."""
    if item.recheck is not None:
        manifest = recheck_manifest(archive, index, item)
    else:
        manifest = full_manifest(archive, index, item)
    manifest["next_due_at"] = _next_due(index, item, planner)
    stored = archive.write_manifest(manifest)
    index.record_capture(stored)
    return stored


def full_manifest(archive: Archive, index: Index, item: CaptureItem) -> dict:
    """A rendered capture: judged, its new blobs stored (unchanged bytes are never stored
    twice; an unchanged page's WARC is kept only when its payloads differ)."""
    ev = gather(item, cited_passages(index, item.source_id))
    captures = index.captures(item.source_id)
    earlier, last_content = _history(archive, captures)
    verdict = decide(ev, earlier, last_content)
    media = None
    if item.media is not None:
        media = keep_media(
            archive,
            item.media,
            captured_at=item.captured_at,
            page_url=item.url,
            software=_software(),
        )
        verdict = with_media(verdict, _last_media(archive, captures), media)
    found = _artifacts(item, ev)
    same_traffic = None
    if verdict.name == "unchanged" and "warc" in found:
        same_traffic = _capture_with_traffic(archive, captures, item)
        if same_traffic is not None:
            del found["warc"]
    artifacts = {name: _store_artifact(archive, item, name, data) for name, data in found.items()}
    manifest = build_manifest(item, ev, verdict, artifacts)
    manifest["fingerprints"]["traffic_sha256"] = item.traffic_sha256
    if same_traffic is not None:
        manifest["warc_same_as"] = same_traffic
    if item.answered:
        manifest["rendering"] = rendering_facts(item, ev.fingerprint)
    if media is not None:
        manifest["media"] = media
        manifest["rendering"]["media"] = len(media)  # a page with media always renders
    return manifest


def _last_media(archive: Archive, captures: list[CaptureRow]) -> list[dict] | None:
    """The media of the source's last answered capture; None if it did not look for any."""
    answered = [r for r in captures if r.verdict != UNREACHABLE]
    if not answered:
        return None
    count = (answered[-1].rendering or {}).get("media")
    if not count:
        return None if count is None else []  # the index knows: no manifest read
    return archive.read_manifest(answered[-1].manifest_key).manifest.get("media")


def _capture_with_traffic(
    archive: Archive, captures: list[CaptureRow], item: CaptureItem
) -> str | None:
    """The id of the source's latest capture with a WARC of exactly ``item``'s payloads."""
    if item.traffic_sha256 is None:
        return None
    with_warc = [r for r in captures if "warc" in r.artifacts]
    if not with_warc:
        return None
    last = archive.read_manifest(with_warc[-1].manifest_key).manifest
    if (last.get("fingerprints") or {}).get("traffic_sha256") == item.traffic_sha256:
        return with_warc[-1].id
    return None


def recheck_manifest(archive: Archive, index: Index, item: CaptureItem) -> dict:
    """A cheap re-check that proved the source unchanged: what was fetched, and the
    capture it matched, whose judged text, passages and evidence still hold."""
    assert item.recheck is not None
    basis_row = index.get_capture(item.recheck["basis"])
    if basis_row is None:
        raise IntegrityError(f"re-check basis {item.recheck['basis']} is not in the index")
    basis = archive.read_manifest(basis_row.manifest_key).manifest
    artifacts = {"text": basis["artifacts"]["text"]}  # the judged text, unchanged
    if item.raw is not None:
        artifacts["raw"] = _store_artifact(archive, item, "raw", item.raw)
    return {
        **_manifest_head(item),
        "redirect_chain": [],
        "media_type": item.media_type or basis.get("media_type"),
        "verdict": "unchanged",
        "reason": item.recheck["reason"],
        "error": None,
        "refused": [],
        "resources": 0,
        "timings": item.timings,
        "artifacts": artifacts,
        "fingerprints": {"text_sha256": basis["fingerprints"]["text_sha256"]},
        "similarity": 1.0,
        # The basis's findings hold for the same text; its evidence is in its manifest.
        "passages": basis.get("passages", []),
        "recheck": {"tier": "conditional", "basis": item.recheck["basis"]},
        # Only a page without media is re-checked cheaply: it still has none.
        **({"media": basis["media"]} if "media" in basis else {}),
        "rendering": recheck_facts(basis.get("rendering") or {}, item),
        "software": _software(),
    }


def _next_due(index: Index, item: CaptureItem, planner: Planner | None) -> str | None:
    source = index.get_source(item.source_id)
    if planner is None or source is None:
        return None
    now = parse_rfc3339(item.captured_at)
    return format_rfc3339(planner.next_for(source, item.http_status, item.headers, now))
