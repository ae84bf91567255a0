"""Identifiers and timestamps of the archive: source ids, capture ids, sortable time keys."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

_RFC3339_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_KEY_FORMAT = "%Y%m%dT%H%M%S%fZ"


def source_id(canonical_url: str) -> str:
    """The id of a source: 32 hex chars of sha256 of its canonical URL (never raw URL text)."""
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()[:32]


def new_capture_id() -> str:
    """A fresh random capture id: 16 hex chars."""
    return secrets.token_hex(8)


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset into an aware UTC datetime.

    Raises ValueError for malformed text or a timestamp without offset: a naive time
    would silently be read in the local zone and break ordering.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"RFC 3339 timestamp without UTC offset: {value!r}")
    return parsed.astimezone(UTC)


def format_rfc3339(moment: datetime) -> str:
    """Format an aware datetime as UTC RFC 3339 with microseconds and a "Z" suffix."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give it a timezone")
    return moment.astimezone(UTC).strftime(_RFC3339_FORMAT)


def utc_now_rfc3339() -> str:
    """Now, e.g. "2026-11-27T14:15:00.123456Z"."""
    return format_rfc3339(datetime.now(UTC))


def timestamp_key(captured_at: str) -> str:
    """Turn "2026-11-27T14:15:00.123456Z" into "20261127T141500123456Z".

    Always fixed width (missing fractions are zero-padded), so keys sort chronologically.
    """
    return parse_rfc3339(captured_at).strftime(_KEY_FORMAT)
