"""Memento (RFC 7089): datetime negotiation over a source's captures, and the header formats.

Pure functions; ``crawler.web.app`` wires them to the TimeGate, TimeMap and Memento routes.
A memento is a capture that holds a rendered DOM; times are compared at second precision,
the precision of a 14-digit memento URL and of an RFC 1123 date.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime

from storage.ids import parse_rfc3339
from storage.index import CaptureRow

_RFC1123 = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"(\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT"
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_KEY = re.compile(r"\d{14}")


def parse_http_date(text: str) -> datetime:
    """An RFC 1123 date (``Sun, 06 Nov 1994 08:49:37 GMT``) as aware UTC; ValueError else."""
    found = _RFC1123.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not an RFC 1123 date")
    _, day, month, year, hour, minute, second = found.groups()
    return datetime(
        int(year),
        _MONTHS.index(month) + 1,
        int(day),
        int(hour),
        int(minute),
        int(second),
        tzinfo=UTC,
    )


def http_date(moment: datetime) -> str:
    """``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def parse_key(text: str) -> datetime:
    """A 14-digit ``YYYYMMDDhhmmss`` memento time; ValueError if malformed."""
    if not _KEY.fullmatch(text):
        raise ValueError(f"{text!r} is not a 14-digit time")
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def capture_time(row: CaptureRow) -> datetime:
    """When the capture was made, to the second (what a memento URL can name)."""
    return parse_rfc3339(row.captured_at).replace(microsecond=0)


def memento_key(row: CaptureRow) -> str:
    return capture_time(row).strftime("%Y%m%d%H%M%S")


def mementos(rows: list[CaptureRow]) -> list[CaptureRow]:
    """The captures that can be served as mementos (they hold a DOM), oldest first."""
    return [row for row in rows if "dom" in row.artifacts]


def choose(rows: list[CaptureRow], at: datetime | None) -> CaptureRow | None:
    """The last memento at or before ``at`` (before the first: the first; None: the latest)."""
    if not rows:
        return None
    if at is None:
        return rows[-1]
    chosen = rows[0]
    for row in rows:
        if capture_time(row) > at:
            break
        chosen = row
    return chosen


def link(target: str, rel: str, **params: str) -> str:
    extra = "".join(f'; {name}="{value}"' for name, value in params.items())
    return f'<{target}>; rel="{rel}"{extra}'


def timemap_rel(position: int, count: int) -> str:
    """rel of the n-th of ``count`` mementos, as RFC 7089's TimeMap examples give it."""
    first, last = position == 0, position == count - 1
    if first and last:
        return "first last memento"
    if first:
        return "first memento"
    if last:
        return "last memento"
    return "memento"
