"""When sources are due: intervals, rules, jitter, Retry-After, and the index's due list."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from crawler.archiving import store_capture
from crawler.config import Config, ScheduleConfig, ScheduleRule
from crawler.items import CaptureItem
from crawler.schedule import Planner, next_due, retry_after, rule_for
from crawler.sources import Citation, register
from storage.archive import Archive
from storage.ids import format_rfc3339, source_id
from storage.index import Index, SourceRow
from storage.objectstore import open_store

AFTER = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # a Friday
CANONICAL = Config().canonical
CAP = timedelta(hours=24)


def row(url: str, *documents: str) -> SourceRow:
    canonical = CANONICAL(url)
    return SourceRow(
        id=source_id(canonical),
        canonical_url=canonical,
        urls=[url],
        added_at="2026-11-01T00:00:00.000000Z",
        citations=[{"document": d, "url": url} for d in documents],
        last_captured_at=None,
    )


def due(source: SourceRow, **schedule) -> datetime:
    return next_due(source, AFTER, ScheduleConfig(**schedule), CANONICAL)


def test_default_interval():
    assert due(row("https://example.org/a")) == AFTER + timedelta(hours=24)
    assert due(row("https://example.org/a"), interval_hours=1.5) == AFTER + timedelta(minutes=90)


@pytest.mark.parametrize(
    ("url", "ruled"),
    [
        ("https://example.org/a", True),
        ("https://www.example.org/a", True),
        ("https://news.example.org/a", True),
        ("https://badexample.org/a", False),
        ("https://example.org.evil.test/a", False),
    ],
)
def test_host_rule_covers_the_host_and_its_subdomains(url, ruled):
    rules = [ScheduleRule(host="www.example.org", interval_hours=2)]
    hours = 2 if ruled else 24
    assert due(row(url), rules=rules) == AFTER + timedelta(hours=hours)


def test_document_rule():
    rules = [ScheduleRule(document="essay.md", interval_hours=6)]
    assert due(row("https://a.example/", "essay.md"), rules=rules) == AFTER + timedelta(hours=6)
    assert due(row("https://a.example/", "other.md"), rules=rules) == AFTER + timedelta(hours=24)


def test_url_rule_matches_any_spelling_of_the_source():
    rules = [ScheduleRule(url="HTTPS://A.example/story?utm_source=x", interval_hours=3)]
    assert due(row("https://a.example/story"), rules=rules) == AFTER + timedelta(hours=3)
    assert due(row("https://a.example/other"), rules=rules) == AFTER + timedelta(hours=24)


def test_cron_rule_is_utc_crontab():
    rules = [ScheduleRule(host="a.example", cron="0 6 * * mon")]  # Mondays 06:00 UTC
    assert due(row("https://a.example/x"), rules=rules) == datetime(2026, 11, 30, 6, tzinfo=UTC)
    daily = [ScheduleRule(host="a.example", cron="30 7 * * *")]
    assert due(row("https://a.example/x"), rules=daily) == AFTER + timedelta(minutes=30)
    month = [ScheduleRule(host="a.example", cron="0 0 1 * *")]
    assert due(row("https://a.example/x"), rules=month) == datetime(2026, 12, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return datetime(2026, 11, n, 6, tzinfo=UTC)


WEEKDAY_CASES = [
    ("1", day(30)),  # Monday
    ("0", day(29)),  # Sunday
    ("1-5", day(30)),
    ("6,0", day(28)),
]
# Sunday as 7, ranges from Sunday, steps: crontab's meaning, not APScheduler 3.x's.
WEEKDAY_RANGES = [
    ("7", day(29)),  # Sunday too
    ("5-7", day(28)),  # Friday to Sunday
    ("0-4", day(29)),  # Sunday to Thursday
    ("0-6", day(28)),  # every day
    ("*/2", day(28)),  # Sun, Tue, Thu, Sat
]


@pytest.mark.parametrize(("weekdays", "expected"), WEEKDAY_CASES + WEEKDAY_RANGES)
def test_cron_rule_weekdays_follow_crontab(weekdays, expected):
    rules = [ScheduleRule(host="a.example", cron=f"0 6 * * {weekdays}")]
    assert due(row("https://a.example/x"), rules=rules) == expected


@pytest.mark.parametrize("weekdays", ["8", "sat-sun", "5-2", "*/0", "funday"])
def test_impossible_weekdays_are_refused_when_the_config_is_read(weekdays):
    with pytest.raises(ValueError, match="day"):
        ScheduleRule(host="a.example", cron=f"0 6 * * {weekdays}")


def test_first_matching_rule_wins():
    source = row("https://a.example/story", "essay.md")
    rules = [
        ScheduleRule(document="essay.md", interval_hours=5),
        ScheduleRule(url="https://a.example/story", interval_hours=1),
    ]
    assert rule_for(source, rules, CANONICAL) is rules[0]
    assert due(source, rules=rules) == AFTER + timedelta(hours=5)


def test_jitter_stays_within_bounds_and_follows_the_seed():
    schedule = ScheduleConfig(interval_hours=1, jitter_minutes=10)
    source = row("https://a.example/")
    base = AFTER + timedelta(hours=1)
    rng = random.Random(7)
    times = [next_due(source, AFTER, schedule, CANONICAL, rng) for _ in range(200)]
    assert all(base <= t <= base + timedelta(minutes=10) for t in times)
    assert max(times) - min(times) > timedelta(minutes=5)  # spread, not constant
    again = random.Random(7)
    assert times == [next_due(source, AFTER, schedule, CANONICAL, again) for _ in range(200)]


def test_cron_rule_gets_jitter_too():
    schedule = ScheduleConfig(
        jitter_minutes=5, rules=[ScheduleRule(host="a.example", cron="0 8 * * *")]
    )
    when = next_due(row("https://a.example/"), AFTER, schedule, CANONICAL, random.Random(1))
    assert AFTER + timedelta(hours=1) <= when <= AFTER + timedelta(hours=1, minutes=5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", AFTER + timedelta(seconds=120)),
        (" 0 ", AFTER),
        ("Fri, 27 Nov 2026 09:30:00 GMT", AFTER + timedelta(hours=2, minutes=30)),
        ("999999", AFTER + CAP),  # capped
        ("Sat, 05 Dec 2026 00:00:00 GMT", AFTER + CAP),  # capped
        ("Thu, 26 Nov 2026 00:00:00 GMT", AFTER),  # in the past: now
        ("soon", None),
        ("-5", None),
        ("Fri, 27 Nov 2026 09:30:00", None),  # no zone: unknowable
    ],
)
def test_retry_after(value, expected):
    assert retry_after([("Content-Type", "text/html"), ("retry-after", value)], AFTER, CAP) == (
        expected
    )


def test_retry_after_missing():
    assert retry_after([("Content-Type", "text/html")], AFTER, CAP) is None


def test_planner_honours_retry_after_only_on_429_and_503():
    planner = Planner(ScheduleConfig(interval_hours=6), CANONICAL, CAP, random.Random(0))
    source, headers = row("https://a.example/"), [("Retry-After", "60")]
    assert planner.next_for(source, 429, headers, AFTER) == AFTER + timedelta(minutes=1)
    assert planner.next_for(source, 503, headers, AFTER) == AFTER + timedelta(minutes=1)
    assert planner.next_for(source, 200, headers, AFTER) == AFTER + timedelta(hours=6)
    assert planner.next_for(source, 429, [], AFTER) == AFTER + timedelta(hours=6)
    assert planner.next_for(source, None, [], AFTER) == AFTER + timedelta(hours=6)


# The index's due list, with next_due_at written the way a crawl writes it.

FAST, SLOW, LIMITED, NEVER = (
    "https://fast.example/a",
    "https://slow.example/a",
    "https://limited.example/a",
    "https://never.example/a",
)


def unreachable(source_id_: str, url: str, at: datetime, **fields) -> CaptureItem:
    return CaptureItem(
        source_id=source_id_,
        url=url,
        captured_at=format_rfc3339(at),
        error=fields.pop("error", "net::ERR_CONNECTION_REFUSED"),
        **fields,
    )


@pytest.fixture
def scheduled(tmp_path):
    """Four sources; three captured at AFTER, under a 6 h default and a 1 h rule."""
    archive = Archive(open_store((tmp_path / "store").as_uri()))
    index = Index(f"sqlite:///{tmp_path}/index.sqlite")
    records = register(archive, index, [Citation(u) for u in (FAST, SLOW, LIMITED, NEVER)])
    ids = {r["canonical_url"]: r["id"] for r in records}
    schedule = ScheduleConfig(
        interval_hours=6, rules=[ScheduleRule(host="fast.example", interval_hours=1)]
    )
    planner = Planner(schedule, CANONICAL, CAP, random.Random(0))
    for url in (FAST, SLOW):
        store_capture(archive, index, unreachable(ids[url], url, AFTER), planner)
    limited = unreachable(
        ids[LIMITED],
        LIMITED,
        AFTER,
        error=None,
        http_status=429,
        headers=[("Retry-After", "600")],
        media_type="text/plain",
        raw=b"slow down",
    )
    store_capture(archive, index, limited, planner)
    yield index, ids
    index.close()


def due_at(index: Index, now: datetime) -> set[str]:
    # The fallback interval is far off: only next_due_at (or no capture at all) decides.
    return {r.canonical_url for r in index.due_sources(now, timedelta(days=365))}


def test_due_sources_follow_next_due_at(scheduled):
    index, ids = scheduled
    assert index.get_source(ids[FAST]).next_due_at == format_rfc3339(AFTER + timedelta(hours=1))
    assert index.get_source(ids[LIMITED]).next_due_at == format_rfc3339(
        AFTER + timedelta(minutes=10)
    )
    assert due_at(index, AFTER) == {NEVER}
    assert due_at(index, AFTER + timedelta(minutes=9, seconds=59)) == {NEVER}
    assert due_at(index, AFTER + timedelta(minutes=10)) == {NEVER, LIMITED}  # the boundary is due
    assert due_at(index, AFTER + timedelta(hours=1)) == {NEVER, LIMITED, FAST}
    assert due_at(index, AFTER + timedelta(hours=6)) == {NEVER, LIMITED, FAST, SLOW}


def test_never_captured_come_first_then_the_longest_waiting(scheduled):
    index, _ = scheduled
    order = [r.canonical_url for r in index.due_sources(AFTER + timedelta(hours=7), timedelta(0))]
    assert order[0] == NEVER and set(order[1:]) == {FAST, SLOW, LIMITED}


def test_a_new_capture_moves_the_due_time(scheduled, tmp_path):
    index, ids = scheduled
    archive = Archive(open_store((tmp_path / "store").as_uri()))
    planner = Planner(ScheduleConfig(interval_hours=6), CANONICAL, CAP, random.Random(0))
    later = AFTER + timedelta(hours=2)
    store_capture(archive, index, unreachable(ids[FAST], FAST, later), planner)
    assert FAST not in due_at(index, later + timedelta(hours=5))
    assert FAST in due_at(index, later + timedelta(hours=6))
