"""The first verdict rules: HTTP status, then the main-text fingerprint."""

from __future__ import annotations

from crawler.items import CaptureItem
from crawler.verdict import Previous, content_fingerprint, decide


def item(status=200, text="Avoid the airport gates.", error=None):
    return CaptureItem(
        source_id="s",
        url="https://e.org/",
        captured_at="2026-01-01T00:00:00Z",
        http_status=status,
        text=text,
        raw=b"<html>",
        error=error,
    )


def test_no_answer_is_unreachable_never_live():
    v = decide(item(status=None, error="net::ERR_NAME_NOT_RESOLVED"), None)
    assert (v.name, v.reason) == ("unreachable", "net::ERR_NAME_NOT_RESOLVED")


def test_server_errors_and_rate_limits_are_unreachable_not_gone():
    assert decide(item(503), Previous("new", "x")).name == "unreachable"
    assert decide(item(429), Previous("new", "x")).name == "unreachable"


def test_first_answer_is_new_and_404_is_gone():
    assert decide(item(), None).name == "new"
    assert decide(item(404), Previous("new", "x")).reason == "HTTP 404"
    assert decide(item(410), None).name == "gone"


def test_same_text_is_unchanged_whitespace_and_width_aside():
    prev = Previous("new", content_fingerprint(item()))
    assert decide(item(text="Avoid  the\nairport gates."), prev).name == "unchanged"
    assert decide(item(text="\uff21void the airport gates."), prev).name == "unchanged"  # NFKC


def test_one_word_edit_is_changed():
    prev = Previous("new", content_fingerprint(item()))
    assert decide(item(text="Avoid the airport gate."), prev).name == "changed"


def test_back_after_gone_is_restored():
    assert decide(item(), Previous("gone", None)).name == "restored"
