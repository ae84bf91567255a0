"""The web UI against real captures, driven with real Chromium (Playwright, Debian's build)."""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from cliutil import history, run_cli, write_config
from fixture_site import FixtureSite, html
from webserver import Served

from crawler.config import load_config
from crawler.web import create_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
DOCUMENT = "report-2021.md"
BEFORE = "The embassy says the Abbey Gate stays closed until further notice from the consul."
AFTER = "The embassy says the Abbey Gate reopened on Tuesday morning for evacuation flights."
EVIL = (
    "<p>Harmless looking archived page.</p><script>"
    "document.cookie = 'pwned=1; path=/';"
    "fetch('/?from=archived-script').catch(function () {});"
    "</script>"
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Two pages captured twice (one edited in between) and a page whose script attacks."""
    tmp = tmp_path_factory.mktemp("web")
    site = FixtureSite()
    site.pages = {
        "/a.html": (200, "text/html", html("Alert", f"<article><p>{BEFORE}</p></article>"), {}),
        "/b.html": (200, "text/html", html("Steady", "<article><p>Nothing new.</p></article>"), {}),
        "/evil.html": (200, "text/html", html("Evil", EVIL), {}),
    }
    site.start()
    config = write_config(tmp / "c.toml", f"file://{tmp / 'store'}")
    urls = {p: site.url(p) for p in site.pages}
    res = run_cli(config, "add", *urls.values(), "--document", DOCUMENT)
    assert res.code == 0, res.err
    assert run_cli(config, "run-once", "--all").code == 0
    site.pages["/a.html"] = (
        200,
        "text/html",
        html("Alert", f"<article><p>{AFTER}</p></article>"),
        {},
    )
    res = run_cli(config, "run-once", "--all")
    assert res.code == 0, res.err
    captures = {p: history(config, u) for p, u in urls.items()}
    yield site, config, urls, captures
    site.stop()


@pytest.fixture(scope="module")
def served(archive) -> Iterator[tuple[Served, list[str]]]:
    """The UI without a token; ``seen`` lists every request path (a test-only hook)."""
    _, config, _, _ = archive
    app = create_app(load_config(config))
    seen: list[str] = []

    @app.after_request
    def count(response):
        from flask import request

        seen.append(request.full_path.rstrip("?"))
        return response

    server = Served(app)
    yield server, seen
    server.close()


@pytest.fixture(scope="module")
def browser():
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: the browser tests need it"
    from playwright.sync_api import sync_playwright

    args = [
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield chromium
        chromium.close()


def _get(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as res:
            return res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_captures_are_what_the_ui_will_show(archive):
    site, _, _, captures = archive
    assert [c["verdict"] for c in captures["/a.html"]] == ["new", "changed"]
    assert [c["verdict"] for c in captures["/b.html"]] == ["new", "unchanged"]
    # Positive control: during its capture the archived script did run (on the site).
    assert site.hits["/"] >= 1


def test_browse_sources_source_and_diff(archive, served, browser, tmp_path):
    _, _, urls, captures = archive
    server, _ = served
    changed = captures["/a.html"][-1]
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.base + "/")
    row = page.locator("tr.source", has_text=urls["/a.html"])
    assert row.locator(".verdict").inner_text() == "changed"
    assert row.locator(".reason").inner_text() == changed["reason"]
    assert row.locator(".state").inner_text() == "live"
    assert changed["captured_at"] in row.locator(".change").inner_text()
    steady = page.locator("tr.source", has_text=urls["/b.html"])
    assert steady.locator(".verdict").inner_text() == "unchanged"
    assert steady.locator(".change").inner_text() == "-"
    assert page.locator("tr.source").count() == 3
    shot = tmp_path / "sources.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nweb UI screenshot: {shot}")

    page.goto(server.base + "/?verdict=changed")
    assert page.locator("tr.source").count() == 1
    page.goto(server.base + f"/?document={DOCUMENT}&verdict=unchanged")
    assert page.locator("tr.source").count() == 2  # the steady page and the evil one
    page.goto(server.base + "/?document=another.md")
    assert page.locator("tr.source").count() == 0

    page.goto(server.base + "/")
    page.locator("tr.source", has_text=urls["/a.html"]).locator("a").first.click()
    timeline = page.locator("#timeline tr.capture")
    assert timeline.count() == 2
    assert timeline.nth(0).locator(".verdict").inner_text() == "changed"
    assert timeline.nth(1).locator(".verdict").inner_text() == "new"
    assert timeline.nth(0).locator(".reason").inner_text() == changed["reason"]
    assert "200" in timeline.nth(0).inner_text()
    assert timeline.nth(1).locator("a.diff").count() == 0  # nothing before the first
    timeline.nth(0).locator("a.diff").click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/diff/{captures['/a.html'][0]['id']}/{changed['id']}")
    body = page.locator("body").inner_text()
    assert "reopened" in body and "closed" in body
    assert page.locator("del, .del, ins, .ins").count() > 0 or "Tuesday" in body
    page.screenshot(path=str(tmp_path / "diff.png"), full_page=True)
    print(f"diff screenshot: {tmp_path / 'diff.png'}")

    page.goto(server.base + f"/documents?ref={DOCUMENT}")
    assert page.locator("#citations tbody tr").count() == 3
    assert "changed" in page.locator("#citations").inner_text()
    context.close()


def test_archived_script_never_runs_in_the_ui(archive, served, browser, tmp_path):
    _, _, _, captures = archive
    server, seen = served
    evil = captures["/evil.html"][-1]
    context = browser.new_context()
    page = context.new_page()
    seen.clear()
    page.goto(server.base + f"/captures/{evil['id']}")
    frame = page.frame_locator("iframe")
    assert "Harmless looking" in frame.locator("body").inner_text()
    assert page.locator("img.shot").evaluate("img => img.naturalWidth") > 0
    sandbox = page.locator("iframe").get_attribute("sandbox")
    assert sandbox is not None and "allow-scripts" not in sandbox
    assert "allow-same-origin" not in sandbox
    time.sleep(1.0)  # the archived script would have fetched by now
    page.screenshot(path=str(tmp_path / "capture.png"), full_page=True)
    print(f"\ncapture view screenshot: {tmp_path / 'capture.png'}")
    assert context.cookies() == []
    assert not any(p == "/" or p.startswith("/?") for p in seen), seen
    assert f"/captures/{evil['id']}/page" in seen  # the page itself was served
    # The page opened directly (not framed) runs no script either: CSP sandbox.
    seen.clear()
    page.goto(server.base + f"/captures/{evil['id']}/page")
    time.sleep(1.0)
    assert context.cookies() == []
    assert not any(p == "/" or p.startswith("/?") for p in seen), seen
    context.close()


def test_headers_of_archived_content(archive, served):
    _, _, _, captures = archive
    server, _ = served
    # The latest capture is a cheap re-check (docs/rechecks.md): its page is the rendered one.
    evil = captures["/evil.html"][-1]
    assert "dom" not in evil["artifacts"]
    rendered = captures["/evil.html"][0]
    status, headers, body = _get(server.base + f"/captures/{evil['id']}/page")
    assert status == 200 and b"document.cookie" in body
    csp = headers["Content-Security-Policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp and "script-src" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, _, page = _get(server.base + f"/captures/{evil['id']}")
    assert b'<iframe sandbox src="/captures/' in page
    # the DOM blob by hash is an attachment, never HTML in the UI's origin
    assert hashlib.sha256(body).hexdigest() == rendered["dom_sha256"]
    status, headers, _ = _get(server.base + f"/blobs/{rendered['dom_sha256']}")
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in headers["Content-Security-Policy"]
    status, headers, data = _get(server.base + f"/blobs/{rendered['screenshot_sha256']}")
    assert headers["Content-Type"] == "image/png" and data.startswith(b"\x89PNG")
    text = evil["artifacts"]["text"]["sha256"]
    status, headers, _ = _get(server.base + f"/blobs/{text}?capture={evil['id']}")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert _get(server.base + "/blobs/" + "0" * 64)[0] == 404
    assert _get(server.base + "/blobs/not-a-hash")[0] == 404
    status, headers, _ = _get(server.base + f"/diff/{evil['id']}/{evil['id']}")
    assert status == 200 and "script" not in headers["Content-Security-Policy"]
    # A UI page reached through a name that is not loopback (DNS rebinding) is refused.
    assert _get(server.base + "/", {"Host": "attacker.example"})[0] == 421


def test_token_is_required_when_set(archive):
    _, config, _, _ = archive
    token = "t0ken-for-the-test"
    server = Served(create_app(load_config(config), token=token))
    try:
        assert _get(server.base + "/")[0] == 401
        assert _get(server.base + "/", {"Authorization": "Bearer wrong"})[0] == 401
        assert _get(server.base + "/", {"Authorization": f"Bearer {token}"})[0] == 200

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(server.base + f"/documents?token={token}&ref=x", timeout=30)
            raise AssertionError("expected a redirect")
        except urllib.error.HTTPError as exc:
            assert exc.code == 303
            assert exc.headers["Location"] == "/documents?ref=x"
            cookie = exc.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert _get(server.base + "/", {"Cookie": cookie.split(";")[0]})[0] == 200
    finally:
        server.close()


def test_serve_refuses_a_public_address_without_a_token(archive):
    _, config, _, _ = archive
    env = {"CITEARCHIVE_UI_TOKEN": ""}
    res = run_cli(config, "serve", "--host", "0.0.0.0", env=env, timeout=60)
    assert res.code == 2
    assert res.err.strip().count("\n") == 0 and "--token" in res.err
