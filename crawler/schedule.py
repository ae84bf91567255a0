"""When each source is due again: the default interval, per-host/document/URL rules, jitter.

The next due time is computed when a capture is stored and kept in the index, so `status`
can show it and a restarted scheduler neither re-captures everything nor skips due work.
A server's ``Retry-After`` on 429/503 pushes the next capture back (bounded).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from apscheduler.triggers.cron import CronTrigger

from crawler.config import ScheduleConfig, ScheduleRule
from storage.index import SourceRow

UTC_NAME = "UTC"
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A weekday number, not a step ("*/2") and not part of a name.
_WEEKDAY_NUMBER = re.compile(r"(?<![/\w])([0-7])(?!\w)")


def cron_trigger(expression: str) -> CronTrigger:
    """A CronTrigger for a five-field crontab line, weekdays numbered as crontab does.

    APScheduler 3.x reads day-of-week numbers as 0 = Monday (its issue #286); crontab, and
    users, mean 0 (or 7) = Sunday. Numbers are turned into names before parsing.
    """
    fields = expression.split()
    if len(fields) == 5:
        fields[4] = _WEEKDAY_NUMBER.sub(lambda m: _WEEKDAYS[int(m.group(1))], fields[4])
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
    value = next((v for k, v in headers if k.lower() == "retry-after"), None)
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
