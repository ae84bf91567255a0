"""Turn index rows into what ``status`` and ``history`` print (JSON records and tables)."""

from __future__ import annotations

from storage.index import CaptureRow, Index


def capture_record(row: CaptureRow) -> dict:
    """One capture as ``history --json`` gives it: the contract fields, then the rest."""
    record = {
        **capture_summary(row),
        "error": row.error,
        "manifest": row.manifest_key,
        "manifest_sha256": row.manifest_sha256,
        "text_sha256": row.text_sha256,
        "artifacts": row.artifacts,
    }
    for name, meta in sorted(row.artifacts.items()):
        record[f"{name}_sha256"] = meta["sha256"]
    return record


def capture_summary(row: CaptureRow) -> dict:
    """The few fields of a capture that lists of sources show."""
    return {
        "id": row.id,
        "captured_at": row.captured_at,
        "verdict": row.verdict,
        "reason": row.reason,
        "http_status": row.http_status,
        "final_url": row.final_url,
    }


def source_state(captures: list[CaptureRow], dead_after: int) -> str:
    """One word for a source: pending, live, gone, unreachable, or dead (N misses in a row)."""
    if not captures:
        return "pending"
    misses = 0
    for row in reversed(captures):
        if row.verdict != "unreachable":
            break
        misses += 1
    if misses >= dead_after:
        return "dead"
    if misses:
        return "unreachable"
    return "gone" if captures[-1].verdict == "gone" else "live"


def status_records(index: Index, dead_after: int = 3) -> list[dict]:
    """Every source with its state and latest capture (None before the first)."""
    records = []
    for source in index.list_sources():
        captures = index.captures(source.id)
        latest = captures[-1] if captures else None
        records.append(
            {
                "id": source.id,
                "url": source.canonical_url,
                "urls": source.urls,
                "citations": source.citations,
                "added_at": source.added_at,
                "latest": None if latest is None else capture_summary(latest),
                "verdict": latest.verdict if latest else None,
                "state": source_state(captures, dead_after),
                "next_due_at": source.next_due_at,
            }
        )
    return records


def status_table(records: list[dict]) -> str:
    if not records:
        return "no sources registered (use `citearchive add URL` or `import`)"
    lines = []
    for r in records:
        latest = r["latest"]
        when = latest["captured_at"] if latest else "never captured"
        verdict = latest["verdict"] if latest else "-"
        reason = f"  ({latest['reason']})" if latest and latest["reason"] else ""
        due = f"  next {r['next_due_at']}" if r["next_due_at"] else ""
        lines.append(f"{r['state']:<12} {verdict:<12} {when:<28} {r['url']}{reason}{due}")
    return "\n".join(lines)


def history_table(url: str, rows: list[dict]) -> str:
    lines = [url]
    if not rows:
        lines.append("  no captures yet")
    for r in rows:
        status = r["http_status"] if r["http_status"] is not None else "-"
        lines.append(
            f"  {r['captured_at']}  {r['id']}  {r['verdict']:<12} {status!s:>4}  "
            f"{r['reason'] or ''}"
        )
    return "\n".join(lines)
