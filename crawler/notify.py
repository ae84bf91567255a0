"""Tell people, unattended, when a cited source changed, went away, moved, came back or died.

Each run turns its verdicts into events, queues them in the outbox for every configured
channel (a JSON webhook, Apprise URLs), then sends everything due. A channel that is down
keeps its notifications for a later run; delivery never fails the run. Channel URLs often
carry a token, so logs and stored errors name a channel as "apprise:0 (json://host)".
"""

from __future__ import annotations

import base64
import json
import logging
import re
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from crawler.config import Config, NotifyConfig
from crawler.errors import CitearchiveError
from crawler.pipelines import CaptureResult
from crawler.reports import source_state
from storage.index import CaptureRow, Index
from storage.outbox import Outbox, OutboxRow, retry_delay

logger = logging.getLogger(__name__)

USER_AGENT = "citearchive/0.1 (notifications)"
LOGGED_ATTEMPTS = 5  # a channel down for days: warn for the first tries, then stay quiet
# Schemes whose host is a server name; in other Apprise schemes the "host" is often a
# token (tgram://BOT_TOKEN/...), so only the scheme is ever shown.
_SERVER_SCHEMES = {"http", "https", "json", "jsons", "form", "forms", "xml", "xmls"}
# Loggers that may print a channel's path or host while Apprise sends.
_CHATTY_LOGGERS = ("apprise", "urllib3.connectionpool")


@dataclass(frozen=True)
class Event:
    """One thing worth telling: a verdict (or a source's death) with what to do about it."""

    kind: str  # changed, gone, moved, restored, dead
    url: str
    source_id: str
    capture_id: str
    captured_at: str
    reason: str
    documents: list[str]  # the citing documents
    diff_command: str
    link: str | None

    @classmethod
    def from_dict(cls, data: dict) -> Event:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # attempts that failed in this delivery
    pending: int = 0  # not delivered yet, retried on a later run

    def problem(self) -> str | None:
        """A few words for the run's summary line, or None when all went out."""
        if self.pending:
            return f"{self.pending} notification{'s' if self.pending != 1 else ''} pending"
        if self.failed:
            return f"{self.failed} notification{'s' if self.failed != 1 else ''} failed"
        return None


# Events


def events_for_run(index: Index, config: Config, results: Sequence[CaptureResult]) -> list[Event]:
    """The events a run's results call for, filtered by ``[notify] events``."""
    wanted = set(config.notify.events)
    dead_after = config.verdicts.dead_after
    events = []
    for result in results:
        if result.capture_id is None:
            continue
        try:
            if result.verdict in wanted:
                events.append(_event(index, config, result, result.verdict, result.reason))
            elif result.verdict == "unreachable" and "dead" in wanted:
                captures = index.captures(result.source_id)
                if _became_dead(captures, result.capture_id, dead_after):
                    reason = f"unreachable {dead_after} times in a row (last: {result.reason})"
                    events.append(_event(index, config, result, "dead", reason))
        except CitearchiveError as exc:  # one unreadable source must not silence the rest
            logger.warning("notifications: no event for %s: %s", result.url, exc)
    return events


def _became_dead(captures: list[CaptureRow], capture_id: str, dead_after: int) -> bool:
    """Whether this capture is the one that made the source dead (told once, not per miss)."""
    ids = [c.id for c in captures]
    if capture_id not in ids:
        return False
    upto = ids.index(capture_id)
    return (
        source_state(captures[: upto + 1], dead_after) == "dead"
        and source_state(captures[:upto], dead_after) != "dead"
    )


def _event(index: Index, config: Config, result: CaptureResult, kind: str, reason: str) -> Event:
    source = index.get_source(result.source_id)
    capture = index.get_capture(result.capture_id or "")
    url = source.canonical_url if source else result.url
    documents = [c.get("document") for c in (source.citations if source else [])]
    ui = config.notify.ui_url
    return Event(
        kind=kind,
        url=url,
        source_id=result.source_id,
        capture_id=result.capture_id or "",
        captured_at=capture.captured_at if capture else "",
        reason=reason,
        documents=list(dict.fromkeys(d for d in documents if d)),
        diff_command="citearchive diff '" + url.replace("'", "'\\''") + "'",
        link=f"{ui.rstrip('/')}/sources/{result.source_id}" if ui else None,
    )


# Delivery


def deliver(
    index: Index, config: Config, events: Sequence[Event], now: datetime | None = None
) -> DeliveryReport:
    """Queue ``events`` for every channel, then send all that is due. Never raises."""
    now = now or datetime.now(UTC)
    channels = channels_of(config.notify)
    if not channels:
        return DeliveryReport()
    sent = failed = 0
    try:
        outbox = Outbox(index)
        outbox.add([asdict(e) for e in events], list(channels), now)
        due: dict[str, list[OutboxRow]] = defaultdict(list)
        for row in outbox.pending(now):
            due[row.channel].append(row)
        for name, rows in due.items():
            if name not in channels:
                continue  # no longer configured: kept, never sent to whoever has that slot now
            ok, bad = _flush(outbox, config.notify, name, channels[name], rows, now)
            sent, failed = sent + ok, failed + bad
        pending = outbox.undelivered(channels)
        if orphans := outbox.undelivered() - pending:
            logger.info("notifications: %d kept for channels no longer configured", orphans)
        return DeliveryReport(sent, failed, pending)
    except Exception as exc:  # the run's captures are stored; a notification must not undo that
        secrets = [s for url in channels.values() for s in secrets_of(url)]
        logger.error("notifications: %s", scrub(f"{type(exc).__name__}: {exc}", secrets))
        return DeliveryReport(sent, failed + len(events) * len(channels), 0)


def channels_of(notify: NotifyConfig) -> dict[str, str]:
    """Stable channel names (what the outbox stores) → URLs (which may hold secrets)."""
    found = {"webhook": notify.webhook_url} if notify.webhook_url else {}
    found.update({f"apprise:{n}": url for n, url in enumerate(notify.apprise_urls)})
    return found


def _flush(
    outbox: Outbox, notify: NotifyConfig, name: str, url: str, rows: list[OutboxRow], now: datetime
) -> tuple[int, int]:
    """Send one channel's due rows, oldest first; returns (sent, failed)."""
    batches = [rows] if notify.digest else [[row] for row in rows]
    sent = 0
    for n, batch in enumerate(batches):
        try:
            _send(name, url, [Event.from_dict(r.event) for r in batch], notify)
        except Exception as exc:
            # The channel is down: the rest wait too, so a dead endpoint costs one timeout
            # per run, not one per event, and the order of messages is kept.
            rest = [row for later in batches[n:] for row in later]
            error = scrub(f"{type(exc).__name__}: {exc}", secrets_of(url))
            for row in rest:
                outbox.failed(row.id, error, now + retry_delay(row.attempts + 1))
            attempt = max(row.attempts for row in rest) + 1
            level = logging.WARNING if attempt <= LOGGED_ATTEMPTS else logging.DEBUG
            label = channel_label(name, url)
            logger.log(level, "notifications: %s failed (try %d): %s", label, attempt, error)
            return sent, len(rest)
        for row in batch:
            outbox.delivered(row.id, now)
        sent += len(batch)
    return sent, 0


def _send(name: str, url: str, events: list[Event], notify: NotifyConfig) -> None:
    """Send one message; any exception means it was not delivered."""
    if name == "webhook":
        payload = {"events": [asdict(e) for e in events]} if notify.digest else asdict(events[0])
        _post_json(url, payload, notify.timeout)
    else:
        _send_apprise(url, events, notify.timeout)


def _title(events: list[Event]) -> str:
    if len(events) == 1:
        return f"citearchive: cited source {events[0].kind}: {events[0].url}"
    counts = Counter(e.kind for e in events)
    return "citearchive: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())


def _text(event: Event) -> str:
    lines = [
        f"{event.kind}: {event.url}",
        f"reason: {event.reason}",
        f"captured: {event.captured_at} (capture {event.capture_id})",
    ]
    if event.documents:
        lines.append("cited by: " + ", ".join(event.documents))
    lines.append(f"see: {event.diff_command}")
    if event.link:
        lines.append(f"link: {event.link}")
    return "\n".join(lines)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would become a GET elsewhere: a 3xx is a failure, not a delivery.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _post_json(url: str, payload: dict, timeout: float) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"webhook_url must be http or https, not {parts.scheme!r}")
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if parts.username is not None:  # urllib ignores user info; send it as basic auth
        creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(creds).decode()
        url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code}") from None  # its text repeats the URL


def _send_apprise(url: str, events: list[Event], timeout: float) -> None:
    import apprise  # loads ~200 plugins: only when an Apprise channel is in use

    title, body = _title(events), "\n\n".join(_text(e) for e in events)
    urgent = any(e.kind in ("gone", "dead") for e in events)
    kind = apprise.NotifyType.WARNING if urgent else apprise.NotifyType.INFO
    with _redacting(secrets_of(url)):
        sender = apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory"))
        if not sender.add(url):
            raise ValueError(f"Apprise cannot use this URL ({urlsplit(url).scheme}://...)")
        result = sender.notify(body=body, title=title, notify_type=kind, timeout=timeout)
    if not result:
        logs = getattr(result, "logs", lambda: [])
        said = [e.message for e in logs() if e.level in ("WARNING", "ERROR")]
        raise OSError(said[-1] if said else "Apprise reported a failure")


# Secrets


def channel_label(name: str, url: str) -> str:
    """How a channel appears in logs: its name, scheme and (for servers) host, no more."""
    try:
        parts = urlsplit(url)
        host = parts.hostname if parts.scheme in _SERVER_SCHEMES else None
    except ValueError:
        return f"{name} (malformed url)"
    return f"{name} ({parts.scheme}://{host or '...'})"


def secrets_of(url: str) -> list[str]:
    """Parts of a channel URL that may be secret, longest first: never logged or stored."""
    found = {url}
    try:
        parts = urlsplit(url)
        found.update(p for p in (parts.username, parts.password) if p)
    except ValueError:
        return [url]
    userinfo, _, hostport = parts.netloc.rpartition("@")
    found.add(userinfo)
    if parts.scheme not in _SERVER_SCHEMES:
        found.update({hostport, hostport.rsplit(":", 1)[0], parts.hostname or ""})
    found.update({parts.path, parts.query, parts.fragment})
    found.update(s for s in parts.path.split("/") if len(s) >= 4)
    found.update(v for _, v in parse_qsl(parts.query) if len(v) >= 4)
    found |= {unquote(s) for s in found}
    return sorted((s for s in found if len(s) > 1), key=len, reverse=True)


_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret, and any user info in a URL, replaced by ***."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return _USERINFO.sub(r"\1***@", text)


@contextmanager
def _redacting(secrets: list[str]) -> Iterator[None]:
    """Scrub the channel's secrets from what Apprise and urllib3 log while it sends."""

    def scrubbed(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:  # a traceback's text could hold the URL: keep only its message
            message += f" ({record.exc_info[1]!r})"
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = scrub(message, secrets), None
        return True

    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    for each in loggers:
        each.addFilter(scrubbed)
    try:
        yield
    finally:
        for each in loggers:
            each.removeFilter(scrubbed)
