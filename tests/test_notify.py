"""Notifications: events from verdicts, the outbox, webhook and Apprise delivery, secrets.

Every delivery goes over real sockets to a receiver on loopback; nothing of the network is
mocked. Captures are stored without a browser, so verdicts come from the real rules.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from crawler.archiving import store_capture
from crawler.config import Config, NotifyConfig, StoreConfig, VerdictsConfig
from crawler.items import CaptureItem
from crawler.notify import DeliveryReport, Event, deliver, events_for_run
from crawler.pipelines import CaptureResult
from crawler.runonce import RunSummary, execute
from crawler.sources import Citation, register
from storage.archive import Archive
from storage.index import Index
from storage.objectstore import open_store
from storage.outbox import Outbox, retry_delay
from storage.runlog import RunLog

CHANGING = "https://news.example.org/story"
VANISHING = "https://gov.example.org/alert"
STEADY = "https://steady.example.org/page"
BODY = " ".join(f"Paragraph {n} reports the vote count in county {n}." for n in range(30))
V1 = "Election results\n\n" + BODY
V2 = V1.replace("county 12", "parish 12")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on loopback that records every POST and answers 200."""

    port: int = 0
    posts: list[Post] = field(default_factory=list)

    def __post_init__(self) -> None:
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                # Recorded before answering: the sender returns only after this.
                posts.append(Post(self.path, dict(self.headers), self.rfile.read(size)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Post]:
        return [p for p in self.posts if p.path.split("?")[0] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    """A port nothing listens on (until a test starts a receiver on it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment must not stand between the sender and loopback.
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@dataclass
class World:
    archive: Archive
    index: Index
    ids: dict[str, str]  # url -> source id

    def capture(self, url: str, day: int, text: str | None, status: int | None) -> CaptureResult:
        item = CaptureItem(
            source_id=self.ids[url],
            url=url,
            captured_at=f"2026-02-{day:02d}T12:00:00.000000Z",
            final_url=url if status else None,
            http_status=status,
            media_type="text/html",
            raw=f"<html><body><p>{text}</p></body></html>".encode() if status else None,
            text=text,
            error=None if status else "net::ERR_CONNECTION_REFUSED",
        )
        manifest = store_capture(self.archive, self.index, item).manifest
        return CaptureResult(
            item.source_id, url, manifest["id"], manifest["verdict"], manifest["reason"]
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    archive = Archive(open_store((tmp_path / "store").as_uri()))
    index = Index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    cited = [
        Citation(CHANGING, document="article.md"),
        Citation(CHANGING, document="notes.pdf"),
        Citation(VANISHING, document="article.md"),
        Citation(STEADY, document="article.md"),
    ]
    records = register(archive, index, cited)
    yield World(archive, index, {r["canonical_url"]: r["id"] for r in records})
    index.close()


@pytest.fixture
def run2(world: World) -> list[CaptureResult]:
    """A second run: one source changed, one gone (404), one unchanged."""
    for url in (CHANGING, VANISHING, STEADY):
        assert world.capture(url, 1, V1, 200).verdict == "new"
    results = [
        world.capture(CHANGING, 2, V2, 200),
        world.capture(VANISHING, 2, "Not Found", 404),
        world.capture(STEADY, 2, V1, 200),
    ]
    assert [r.verdict for r in results] == ["changed", "gone", "unchanged"]
    return results


def config(**notify: object) -> Config:
    return Config(notify=NotifyConfig(**notify), verdicts=VerdictsConfig(dead_after=3))


def test_webhook_gets_one_event_per_changed_and_gone_source(world, run2, receiver):
    cfg = config(webhook_url=receiver.url(), ui_url="https://archive.example.net/")
    events = events_for_run(world.index, cfg, run2)
    assert [e.kind for e in events] == ["changed", "gone"]

    assert deliver(world.index, cfg, events, now=T0) == DeliveryReport(sent=2, failed=0, pending=0)
    assert [p.headers["Content-Type"] for p in receiver.posts] == ["application/json"] * 2
    got = {p.json()["url"]: p.json() for p in receiver.posts}
    changed, gone = got[CHANGING], got[VANISHING]
    assert changed["kind"] == "changed" and changed["reason"] == run2[0].reason
    assert changed["capture_id"] == run2[0].capture_id
    assert changed["captured_at"] == "2026-02-02T12:00:00.000000Z"
    assert changed["documents"] == ["article.md", "notes.pdf"]
    assert changed["diff_command"] == f"citearchive diff '{CHANGING}'"
    assert changed["link"] == f"https://archive.example.net/sources/{world.ids[CHANGING]}"
    assert gone["kind"] == "gone" and gone["reason"] == "HTTP 404"

    # Delivered rows are done: a later run sends nothing again.
    assert deliver(world.index, cfg, [], now=T0 + timedelta(days=1)).sent == 0
    assert len(receiver.posts) == 2


def test_digest_is_one_message_per_channel_with_all_events(world, run2, receiver):
    cfg = config(
        webhook_url=receiver.url("/hook"),
        apprise_urls=[f"json://127.0.0.1:{receiver.port}/apprise"],
        digest=True,
    )
    events = events_for_run(world.index, cfg, run2)
    assert deliver(world.index, cfg, events, now=T0) == DeliveryReport(4, 0, 0)

    [hook] = receiver.at("/hook")
    assert [(e["kind"], e["url"]) for e in hook.json()["events"]] == [
        ("changed", CHANGING),
        ("gone", VANISHING),
    ]
    [apprise] = receiver.at("/apprise")
    message = apprise.json()["message"]
    assert f"changed: {CHANGING}" in message and f"gone: {VANISHING}" in message
    assert apprise.json()["title"] == "citearchive: 1 changed, 1 gone"
    assert apprise.json()["type"] == "warning"  # something went away


def test_events_are_filtered_by_config(world, run2, receiver):
    only_gone = config(webhook_url=receiver.url(), events=["gone"])
    events = events_for_run(world.index, only_gone, run2)
    assert [(e.kind, e.url) for e in events] == [("gone", VANISHING)]
    deliver(world.index, only_gone, events, now=T0)
    assert [p.json()["kind"] for p in receiver.posts] == ["gone"]

    assert events_for_run(world.index, config(events=["moved", "restored"]), run2) == []


def test_apprise_json_and_form_bodies_name_url_verdict_reason(world, run2, receiver):
    cfg = config(
        apprise_urls=[
            f"json://127.0.0.1:{receiver.port}/json-in",
            f"form://127.0.0.1:{receiver.port}/form-in",
        ]
    )
    events = events_for_run(world.index, cfg, run2)
    assert deliver(world.index, cfg, events, now=T0) == DeliveryReport(4, 0, 0)

    json_messages = [p.json()["message"] for p in receiver.at("/json-in")]
    form_messages = [parse_qs(p.body.decode())["message"][0] for p in receiver.at("/form-in")]
    for messages in (json_messages, form_messages):
        changed, gone = messages
        assert f"changed: {CHANGING}" in changed and f"reason: {run2[0].reason}" in changed
        assert "cited by: article.md, notes.pdf" in changed
        assert f"citearchive diff '{CHANGING}'" in changed
        assert f"gone: {VANISHING}" in gone and "reason: HTTP 404" in gone
    titles = [p.json()["title"] for p in receiver.at("/json-in")]
    assert titles[0] == f"citearchive: cited source changed: {CHANGING}"


def test_endpoint_down_keeps_notifications_and_delivers_them_once_later(world, run2):
    port = free_port()
    cfg = config(
        webhook_url=f"http://127.0.0.1:{port}/hook",
        apprise_urls=[f"json://127.0.0.1:{port}/apprise"],
    )
    events = events_for_run(world.index, cfg, run2)
    assert deliver(world.index, cfg, events, now=T0) == DeliveryReport(0, 4, 4)
    rows = Outbox(world.index).all()
    assert {r.channel for r in rows} == {"webhook", "apprise:0"}
    assert all(r.attempts == 1 and r.last_error and r.delivered_at is None for r in rows)
    assert {r.next_attempt_at for r in rows} == {"2026-03-01T12:01:00.000000Z"}

    # Still down a minute later: the next wait is five minutes.
    later = T0 + timedelta(minutes=1)
    assert deliver(world.index, cfg, [], now=later) == DeliveryReport(0, 4, 4)
    assert {r.next_attempt_at for r in Outbox(world.index).all()} == {"2026-03-01T12:06:00.000000Z"}

    server = Receiver(port)
    try:
        # Up again, but nothing is due before its retry time.
        assert deliver(world.index, cfg, [], now=T0 + timedelta(minutes=3)) == DeliveryReport(
            0, 0, 4
        )
        assert server.posts == []
        assert deliver(world.index, cfg, [], now=T0 + timedelta(minutes=6)) == DeliveryReport(
            4, 0, 0
        )
        assert deliver(world.index, cfg, [], now=T0 + timedelta(days=2)) == DeliveryReport()
        assert sorted(p.json().get("kind") or "apprise" for p in server.at("/hook")) == [
            "changed",
            "gone",
        ]
        assert len(server.at("/apprise")) == 2
        assert len(server.posts) == 4
    finally:
        server.close()
    rows = Outbox(world.index).all()
    assert all(r.attempts == 3 and r.delivered_at for r in rows)


def test_retry_waits_grow_then_stay_at_two_hours():
    waits = [retry_delay(n) for n in range(1, 7)]
    assert waits == [timedelta(minutes=m) for m in (1, 5, 30, 120, 120, 120)]


def test_dead_is_told_once_at_the_nth_unreachable_capture(world):
    cfg = config()
    assert world.capture(STEADY, 1, V1, 200).verdict == "new"
    kinds = []
    for day in range(2, 7):
        miss = world.capture(STEADY, day, None, None)
        assert miss.verdict == "unreachable"
        kinds.append([e.kind for e in events_for_run(world.index, cfg, [miss])])
    assert kinds == [[], [], ["dead"], [], []]

    # Reachable again, then three more misses: dead again, told again.
    assert world.capture(STEADY, 7, V1, 200).verdict == "unchanged"
    misses = [world.capture(STEADY, day, None, None) for day in (8, 9, 10)]
    [dead] = events_for_run(world.index, cfg, misses)
    assert dead.capture_id == misses[2].capture_id
    assert dead.reason == "unreachable 3 times in a row (last: net::ERR_CONNECTION_REFUSED)"
    assert events_for_run(world.index, config(events=["changed", "gone"]), misses) == []


def test_secrets_never_reach_logs_or_the_outbox(world, run2, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = ["SECRETPATHTOKEN", "SECRETQUERYTOKEN", "SECRETPASSWORD", "SECRETAPPRISEPATH"]
    secrets += ["SECRETWEBPASS"]
    events = events_for_run(world.index, config(), run2)

    def channels(port: int) -> Config:
        return config(
            webhook_url=f"http://bob:SECRETWEBPASS@127.0.0.1:{port}/hooks/SECRETPATHTOKEN"
            "?token=SECRETQUERYTOKEN",
            apprise_urls=[f"json://alice:SECRETPASSWORD@127.0.0.1:{port}/SECRETAPPRISEPATH"],
        )

    down = deliver(world.index, channels(free_port()), events, now=T0)
    assert down == DeliveryReport(0, 4, 4)
    up = deliver(world.index, channels(receiver.port), [], now=T0 + timedelta(hours=1))
    assert up == DeliveryReport(4, 0, 0)

    # Sent where configured, with the credentials: only the logs and rows never show them.
    [webhook, _] = receiver.at("/hooks/SECRETPATHTOKEN")
    assert webhook.path.endswith("?token=SECRETQUERYTOKEN")
    auth = base64.b64decode(webhook.headers["Authorization"].split()[1])
    assert auth == b"bob:SECRETWEBPASS"
    assert len(receiver.at("/SECRETAPPRISEPATH")) == 2

    logged = caplog.text
    assert "webhook (http://127.0.0.1)" in logged and "apprise:0 (json://127.0.0.1)" in logged
    assert "JSON POST URL" in logged  # Apprise's own debug lines were captured, scrubbed
    rows = Outbox(world.index).all()
    assert len(rows) == 4 and all(r.last_error for r in rows)
    stored = json.dumps([(r.channel, r.last_error, r.event) for r in rows])
    for secret in secrets:
        assert secret not in logged, secret
        assert secret not in stored, secret


def test_summary_line_mentions_notifications_only_when_some_wait():
    summary = RunSummary("r1", 1, [CaptureResult("s", STEADY, "c", "changed", "x")], False)
    assert summary.line() == "captured 1 of 1 due sources: 1 changed"
    summary.notifications = DeliveryReport(sent=3)
    assert summary.line() == "captured 1 of 1 due sources: 1 changed"
    summary.notifications = DeliveryReport(sent=1, failed=2, pending=2)
    assert summary.line() == "captured 1 of 1 due sources: 1 changed; 2 notifications pending"


def test_run_once_sends_what_is_pending_and_never_fails_for_it(tmp_path):
    hook_port, dead_port = free_port(), free_port()
    cfg = Config(
        store=StoreConfig(url=f"file:{tmp_path / 'store'}"),
        notify=NotifyConfig(
            webhook_url=f"http://127.0.0.1:{hook_port}/hook",
            apprise_urls=[f"json://127.0.0.1:{dead_port}/never"],
        ),
    )
    event = Event(
        "gone", VANISHING, "sid", "cid", "2026-02-02T12:00:00.000000Z", "HTTP 410", [], "d", None
    )
    index = Index(cfg.index_url)
    try:
        # Failed an hour ago, so due again now.
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        assert deliver(index, cfg, [event], now=hour_ago) == DeliveryReport(0, 2, 2)
    finally:
        index.close()

    server = Receiver(hook_port)
    try:
        summary = execute(cfg, everything=False, limit=None, log_level="WARNING")
    finally:
        server.close()
    assert [p.json()["reason"] for p in server.posts] == ["HTTP 410"]
    assert summary.line() == "captured 0 of 0 due sources; 1 notification pending"
    assert summary.not_stored == 0
    index = Index(cfg.index_url)
    try:
        assert RunLog(index).recent()[0].status == "ok"
    finally:
        index.close()


def test_unusable_channel_urls_wait_in_the_outbox_without_raising(world, run2):
    cfg = config(webhook_url="ftp://files.example.org/in", apprise_urls=["nosuchscheme://x/y"])
    events = events_for_run(world.index, cfg, run2)
    assert deliver(world.index, cfg, events, now=T0) == DeliveryReport(0, 4, 4)
    errors = {r.channel: r.last_error for r in Outbox(world.index).all()}
    assert errors == {
        "webhook": "ValueError: webhook_url must be http or https, not 'ftp'",
        "apprise:0": "ValueError: Apprise cannot use this URL (nosuchscheme://...)",
    }
    # A channel taken out of the config keeps its rows but no longer counts as waiting.
    webhook_only = config(webhook_url="ftp://files.example.org/in")
    assert deliver(world.index, webhook_only, [], now=T0 + timedelta(hours=1)).pending == 2
