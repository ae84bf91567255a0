"""When each source is due again: the default interval, per-host/document/URL rules, jitter.

The next due time is computed when a capture is stored and kept in the index, so `status`
can show it and a restarted scheduler neither re-captures everything nor skips due work.
A server's ``Retry-After`` on 429/503 pushes the next capture back (bounded).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from apscheduler.triggers.cron import CronTrigger

from crawler.config import ScheduleConfig, ScheduleRule
from crawler.headerfields import field
from storage.index import SourceRow

UTC_NAME = "UTC"
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _crontab_day(token: str) -> int:
    token = token.lower()
    if token in _DAY_NAMES:
        return _DAY_NAMES.index(token)
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    raise ValueError(f"day of week {token!r} is not 0-7 or sun-sat")


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field as explicit day names (0 and 7 are Sunday).

    APScheduler 3.x reads day-of-week numbers as 0 = Monday (its issue #286) and refuses
    ranges that wrap; crontab's meaning is computed here and handed over as names.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        spec, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"day-of-week step {step_text!r} must be positive")
        if spec == "*":
            first, last = 0, 6
        elif "-" in spec:
            low, high = spec.split("-", 1)
            first, last = _crontab_day(low), _crontab_day(high)
            if high.strip() == "7":
                last = 7  # "5-7" is Friday to Sunday
        else:
            first = last = _crontab_day(spec)
            if step_text:
                last = 6
        if last < first:
            raise ValueError(f"day-of-week range {spec!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_DAY_NAMES[day] for day in sorted(days))


def cron_trigger(expression: str) -> CronTrigger:
    """A CronTrigger for a five-field crontab line (UTC), weekdays as crontab means them."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"{expression!r} is not a five-field crontab expression")
    fields[4] = crontab_weekdays(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=UTC_NAME)


def _host_matches(rule_host: str, url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    want = rule_host.lower().removeprefix("www.")
    return host.removeprefix("www.") == want or host.endswith("." + want)


def rule_for(
    source: SourceRow, rules: list[ScheduleRule], canonical: Callable[[str], str]
) -> ScheduleRule | None:
    """The first rule that names this source, its host, or a document citing it."""
    documents = {c.get("document") for c in source.citations}
    for rule in rules:
        if rule.url is not None and canonical(rule.url) == source.canonical_url:
            return rule
        if rule.host is not None and _host_matches(rule.host, source.canonical_url):
            return rule
        if rule.document is not None and rule.document in documents:
            return rule
    return None


def next_due(
    source: SourceRow,
    after: datetime,
    config: ScheduleConfig,
    canonical: Callable[[str], str],
    rng: random.Random | None = None,
) -> datetime:
    """The next time ``source`` should be captured, counting from ``after`` (aware, UTC)."""
    rule = rule_for(source, config.rules, canonical)
    if rule is not None and rule.cron is not None:
        trigger = cron_trigger(rule.cron)
        due = trigger.get_next_fire_time(None, after)
    else:
        hours = rule.interval_hours if rule is not None else config.interval_hours
        due = after + timedelta(hours=hours)
    if config.jitter_minutes:
        due += timedelta(minutes=(rng or random).uniform(0, config.jitter_minutes))
    return due


def retry_after(headers: list[tuple[str, str]], now: datetime, cap: timedelta) -> datetime | None:
    """When a 429/503 answer's ``Retry-After`` (seconds or HTTP date) allows the next try."""
    value = field(headers, "retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        when = (
            now + timedelta(seconds=int(value))
            if value.isdigit()
            else (parsedate_to_datetime(value))
        )
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(when, now), now + cap)


class Planner:
    """Decides each captured source's next due time from the config."""

    def __init__(
        self,
        config: ScheduleConfig,
        canonical: Callable[[str], str],
        retry_cap: timedelta,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.canonical = canonical
        self.retry_cap = retry_cap
        self.rng = rng or random.Random()

    def next_for(
        self, source: SourceRow, status: int | None, headers: list[tuple[str, str]], now: datetime
    ) -> datetime:
        """The schedule's next time, or sooner when a 429/503 says when to come back."""
        if status in (429, 503):
            when = retry_after(headers, now, self.retry_cap)
            if when is not None:
                return when
        return next_due(source, now, self.config, self.canonical, self.rng)
