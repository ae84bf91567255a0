"""Turn index rows into what ``status`` and ``history`` print (JSON records and tables)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from storage.index import CaptureRow, StatusLine, StatusRow


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


def state_of(latest_verdict: str | None, unreachable_streak: int, dead_after: int) -> str:
    """``source_state`` from what the index keeps per source (no capture list needed)."""
    if latest_verdict is None:
        return "pending"
    if unreachable_streak >= dead_after:
        return "dead"
    if unreachable_streak:
        return "unreachable"
    return "gone" if latest_verdict == "gone" else "live"


def status_records(rows: list[StatusRow], dead_after: int = 3) -> list[dict]:
    """Every source with its state and latest capture (None before the first): `--json`."""
    return [
        {
            "id": r.id,
            "url": r.canonical_url,
            "urls": r.urls,
            "citations": r.citations,
            "added_at": r.added_at,
            "latest": None
            if r.latest_id is None
            else {
                "id": r.latest_id,
                "captured_at": r.captured_at,
                "verdict": r.verdict,
                "reason": r.reason,
                "http_status": r.http_status,
                "final_url": r.final_url,
            },
            "verdict": r.verdict,
            "state": state_of(r.verdict, r.unreachable_streak or 0, dead_after),
            "next_due_at": r.next_due_at,
        }
        for r in rows
    ]


def json_array(records: Iterable[dict]) -> str:
    """A JSON array with one compact object per line: still readable, and encoded by
    json's C encoder (``indent`` selects its pure-Python one: 2.3 s of `status --json`
    at 100,000 sources)."""
    body = ",\n".join(f"  {json.dumps(record)}" for record in records)
    return f"[\n{body}\n]" if body else "[]"


def status_table(rows: Iterable[StatusLine], dead_after: int = 3) -> str:
    """Plain `status`: a line per source (state, verdict, when, URL, reason, next due)."""
    # One pass of plain tuple unpacking: this loop runs 100,000 times at scale.
    table = "\n".join(
        f"{state_of(verdict, streak or 0, dead_after):<12} {verdict or '-':<12} "
        f"{captured_at or 'never captured':<28} {url}"
        f"{f'  ({reason})' if reason else ''}{f'  next {due}' if due else ''}"
        for url, due, streak, captured_at, verdict, reason in rows
    )
    return table or "no sources registered (use `citearchive add URL` or `import`)"


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


def fleet_line(fleet: dict) -> str:
    """The fleet's state under ``status``: queue depth, workers alive, sources leased."""

    def known(value: int | None) -> str:
        return "unknown" if value is None else str(value)

    alive = ", ".join(fleet["workers"]) or "none answered"
    line = (
        f"fleet: {known(fleet['queue_depth'])} task(s) queued, {len(fleet['workers'])} "
        f"worker(s) alive ({alive}), {known(fleet['leased'])} source(s) leased"
    )
    if fleet["errors"]:
        line += "; " + "; ".join(fleet["errors"])
    return line
