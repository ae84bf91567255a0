"""The media of a capture (``manifest["media"]``): choose, describe and read them, for
``get --artifact media``, ``history``, the web UI, the WACZ export and the report.

The media list lives in the capture's manifest, not in the index row, so each function here
reads manifests; ``index`` numbers are 1-based positions in that list.
"""

from __future__ import annotations

from datetime import datetime

from crawler.app import App, parse_time
from crawler.errors import NotFoundError
from crawler.reports import history_table
from crawler.verdict import UNREACHABLE
from storage.index import CaptureRow, SourceRow

HELD = ("preserved", "reused")  # statuses whose bytes are in the store
AV_KINDS = ("video", "audio")


def media_of(app: App, row: CaptureRow) -> list[dict]:
    """The capture's media entries, empty when it has none. The manifest is not read when
    the index already says so: an unreachable capture has no page, and a rendered one
    records how many media it found (``rendering.media``)."""
    count = (row.rendering or {}).get("media")
    if row.verdict == UNREACHABLE or (isinstance(count, int) and count == 0):
        return []
    media = app.archive.read_manifest(row.manifest_key).manifest.get("media") or []
    return [m for m in media if isinstance(m, dict)] if isinstance(media, list) else []


def is_held(entry: dict) -> bool:
    """Whether the entry's bytes are in the store."""
    return entry.get("status") in HELD and isinstance(entry.get("sha256"), str)


def capture_with_media(
    app: App, source: SourceRow, at: datetime | None
) -> tuple[CaptureRow, list[dict]]:
    """The last capture at or before ``at`` that lists media, and its media list."""
    rows = [
        r for r in app.index.captures(source.id) if at is None or parse_time(r.captured_at) <= at
    ]
    for row in reversed(rows):
        media = media_of(app, row)
        if media:
            return row, media
    when = f" at or before {at.isoformat()}" if at else ""
    raise NotFoundError(f"{source.canonical_url}: no capture with media{when}")


def held_entry(row: CaptureRow, media: list[dict], n: int) -> dict:
    """Entry ``n`` (1-based) of ``row``'s media, if its bytes are stored; else NotFoundError
    saying why (out of range, or its status and reason)."""
    if not 1 <= n <= len(media):
        raise NotFoundError(
            f"capture {row.id} has {len(media)} media item(s): --index {n} is out of range"
        )
    entry = media[n - 1]
    if not is_held(entry):
        reason = f": {entry['reason']}" if entry.get("reason") else ""
        raise NotFoundError(
            f"media {n} of capture {row.id} ({entry.get('kind', 'media')} {entry.get('url')}) "
            f"was not preserved: {entry.get('status')}{reason}"
        )
    return entry


def read_media(app: App, source: SourceRow, at: datetime | None, n: int) -> bytes:
    """The preserved bytes of media ``n`` of the last capture with media (verified)."""
    row, media = capture_with_media(app, source, at)
    return app.archive.get_blob(held_entry(row, media, n)["sha256"])


def media_summary(entry: dict) -> dict:
    """What ``history --json`` shows of one media entry."""
    probe = entry.get("probe") if isinstance(entry.get("probe"), dict) else {}
    summary = {
        "kind": entry.get("kind"),
        "url": entry.get("url"),
        "status": entry.get("status"),
        "reason": entry.get("reason"),
        "sha256": entry.get("sha256"),
        "size": entry.get("size"),
        "duration": probe.get("duration"),
        "media_type": entry.get("media_type"),
    }
    if entry.get("same_as"):
        summary["same_as"] = entry["same_as"]
    return summary


def history_records(app: App, rows: list[CaptureRow], records: list[dict]) -> list[dict]:
    """``records`` (one per row) with each capture's ``media`` list added."""
    return [
        {**rec, "media": [media_summary(m) for m in media_of(app, row)]}
        for row, rec in zip(rows, records, strict=True)
    ]


def duration_text(seconds: object) -> str | None:
    """4.04 -> "0:04", 3725 -> "1:02:05"; None when unknown."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return None
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _duration(entry: dict) -> object:
    """The duration of a manifest entry (probe.duration) or of a media_summary."""
    probe = entry.get("probe")
    return probe.get("duration") if isinstance(probe, dict) else entry.get("duration")


def media_phrase(entry: dict) -> str:
    """One entry in a few words: "video preserved (sha256 0123456789ab…, 0:04)"."""
    kind = entry.get("kind") or "media"
    if is_held(entry):
        facts = [f"sha256 {entry['sha256'][:12]}…"]
        duration = duration_text(_duration(entry))
        if duration:
            facts.append(duration)
        return f"{kind} preserved ({', '.join(facts)})"
    reason = f": {entry['reason']}" if entry.get("reason") else ""
    return f"{kind} not preserved ({entry.get('status')}){reason}"


def history_text(url: str, records: list[dict]) -> str:
    """``history``'s table with one indented line per media entry under its capture."""
    lines = history_table(url, records).split("\n")
    if not records:
        return "\n".join(lines)
    out = lines[:1]
    for line, rec in zip(lines[1:], records, strict=True):
        out.append(line)
        for n, entry in enumerate(rec.get("media") or [], start=1):
            out.append(f"      media {n}: {media_phrase(entry)}  {entry.get('url')}")
    return "\n".join(out)


def _av(app: App, row: CaptureRow) -> list[dict]:
    return [m for m in media_of(app, row) if m.get("kind") in AV_KINDS]


def _removed_reason(reason: str | None) -> bool:
    return (reason or "").lower().startswith(("video removed", "audio removed"))


def citation_media(app: App, rows: list[CaptureRow]) -> str | None:
    """One line on the video or audio of a source's latest answered capture, for the
    citation report; None when neither it nor (after a removal) an earlier one had any."""
    answered = [r for r in rows if r.verdict != UNREACHABLE]
    if not answered:
        return None
    av = _av(app, answered[-1])
    more = f" (+{len(av) - 1} more)" if len(av) > 1 else ""
    held = [m for m in av if is_held(m)]
    if held:
        return media_phrase(held[0]) + more
    failed = [m for m in av if m.get("status") != "gone"]
    if failed:
        entry = failed[0]
        why = entry.get("reason") or entry.get("status")
        return f"{entry.get('kind')} not preserved: {why}{more}"
    if av:  # every entry gone: removed since the capture after the last one that held it
        return _removal(app, answered, len(answered) - 1, av)
    if answered[-1].verdict == "gone":  # the page itself: did its last live capture hold any?
        live = [i for i, r in enumerate(answered) if r.verdict != "gone"]
        if live and any(is_held(m) for m in _av(app, answered[live[-1]])):
            return _removal(app, answered, live[-1] + 1, av) + " (page gone)"
        return None
    # Gone from a page that stays: the verdict that said so (no manifest read for others).
    removals = [i for i, r in enumerate(answered) if _removed_reason(r.reason)]
    return _removal(app, answered, removals[-1], av) if removals else None


def _removal(app: App, answered: list[CaptureRow], last: int, av: list[dict]) -> str:
    """The removal line ("video removed since <date>; preserved copy from capture <id>"):
    walks back from ``answered[last]`` to the last capture whose video or audio is stored."""
    since = answered[last]
    kind = av[0].get("kind") if av else (since.reason or "video").split()[0].lower()
    for row in reversed(answered[:last] if not av else answered[: last + 1]):
        held = [m for m in _av(app, row) if is_held(m)]
        if held:
            return (
                f"{held[0].get('kind')} removed since {since.captured_at[:10]}; "
                f"preserved copy from capture {row.id}"
            )
        since = row
    return f"{kind} removed since {since.captured_at[:10]}; no preserved copy"
