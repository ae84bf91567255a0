"""Tiered re-checks: a plain fetch stands in for the render only where that is safe.

Real Chromium and a real fixture site on loopback. The site counts every request, so a
test can prove a cheap re-check never started the browser's subresource loads, and that
a page whose text is written by script is rendered on every re-check.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cliutil import history, run_cli
from fixture_site import FixtureSite, html

from crawler.recheck import RecheckBasis, basis_for, cheap_outcome
from storage.index import CaptureRow

H = "text/html; charset=utf-8"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def config(path: Path, store: Path, extra: str = "") -> Path:
    path.write_text(
        f'[store]\nurl = "file://{store}"\n[crawl]\nallow_private_networks = true\n'
        f"settle_timeout = 5\npage_timeout = 20\n{extra}\n"
        "[politeness]\nper_host_delay = 0\nper_host_concurrency = 8\n"
    )
    return path


def manifest(store: Path, record: dict) -> dict:
    return json.loads((store / record["manifest"]).read_text())


def blob_count(store: Path) -> int:
    return sum(1 for p in (store / "blobs").rglob("*") if p.is_file())


def nonce_page(n: int) -> tuple[int, str, bytes, dict]:
    body = "<article><h1>Budget</h1><p>The council approved the budget on Monday night.</p>"
    # A per-response token, as CSRF-protected pages carry: other bytes, the same text.
    return 200, H, html("Budget", body + f"</article><!-- request {n:08d} -->"), {}


@pytest.mark.browser
def test_tiered_rechecks_render_only_what_needs_it(tmp_path: Path):
    site = FixtureSite()
    site.pages["/etag.html"] = (
        200,
        H,
        html("Alert", "<article><h1>Alert</h1><p>Shelter in place until noon.</p></article>"),
        {"ETag": '"v1"'},
    )
    site.pages["/nonce.html"] = nonce_page(1)
    site.start()
    store = tmp_path / "store"
    cfg = config(tmp_path / "c.toml", store)
    urls = {p: site.url(p) for p in ("/static.html", "/etag.html", "/nonce.html", "/js.html")}
    try:
        assert run_cli(cfg, "add", *urls.values()).code == 0
        assert run_cli(cfg, "run-once", "--all").code == 0  # 1: every page rendered
        first = {p: manifest(store, history(cfg, u)[-1]) for p, u in urls.items()}
        assert {p: m["rendering"]["needs_js"] for p, m in first.items()} == {
            "/static.html": False,
            "/etag.html": False,
            "/nonce.html": False,
            "/js.html": True,  # its text arrives by fetch(): never re-checked cheaply
        }
        subresources = (site.hits["/style.css"], site.hits["/pixel.png"])
        blobs = blob_count(store)

        # 2: nothing edited but the script's data and the nonce.
        site.pages["/nonce.html"] = nonce_page(2)
        site.pages["/data.json"] = (200, "application/json", b'{"text": "Rendered 9000"}', {})
        assert run_cli(cfg, "run-once", "--all").code == 0
        second = {p: history(cfg, u)[-1] for p, u in urls.items()}
        assert {p: r["verdict"] for p, r in second.items()} == {
            "/static.html": "unchanged",
            "/etag.html": "unchanged",
            "/nonce.html": "unchanged",
            "/js.html": "changed",  # an edit only a rendering browser can see
        }
        assert second["/etag.html"]["http_status"] == 304
        assert site.last_headers["/etag.html"]["If-None-Match"] == '"v1"'
        assert "same bytes" in second["/static.html"]["reason"]
        assert "same text" in second["/nonce.html"]["reason"]
        for path in ("/static.html", "/etag.html", "/nonce.html"):
            cheap = manifest(store, second[path])
            assert cheap["recheck"]["basis"] == first[path]["id"]
            assert not {"dom", "screenshot", "warc"} & set(cheap["artifacts"])
        # No browser for the cheap ones: the static page's CSS and image were not loaded.
        assert (site.hits["/style.css"], site.hits["/pixel.png"]) == subresources
        # Stored: the nonce page's new HTML, and the script page's new capture.
        assert blob_count(store) > blobs
        # The rendered copy of a cheaply re-checked page is still the one to retrieve.
        dom = run_cli(cfg, "get", urls["/static.html"], "--artifact", "dom")
        assert dom.code == 0 and "Avoid the airport gates" in dom.out

        # 3: an edit, a move, and a script page that stays as it was.
        site.pages["/static.html"] = (
            200,
            H,
            html("Security alert", "<article><h1>Security alert</h1><p>All clear.</p></article>"),
            {},
        )
        site.pages["/etag.html"] = (301, H, b"", {"Location": "/nonce.html"})
        blobs = blob_count(store)
        assert run_cli(cfg, "run-once", "--all").code == 0
        third = {p: history(cfg, u)[-1] for p, u in urls.items()}
        assert third["/static.html"]["verdict"] == "changed"
        assert third["/etag.html"]["verdict"] not in ("unchanged", "unreachable")
        for path in ("/static.html", "/etag.html"):
            assert "dom" in manifest(store, third[path])["artifacts"]  # rendered in full
        js = manifest(store, third["/js.html"])
        assert js["verdict"] == "unchanged" and "dom" in js["artifacts"]
        # Payload-identical traffic: its WARC is the earlier capture's, not stored again.
        # (The digest covers the screenshot too; on a starved machine Chromium can paint a
        # pixel differently, and then a new WARC is right: test_unchanged_payloads_... below
        # proves the rule without a browser.)
        earlier = manifest(store, second["/js.html"])
        if js["fingerprints"]["traffic_sha256"] == earlier["fingerprints"]["traffic_sha256"]:
            assert js["warc_same_as"] == earlier["id"]
            assert "warc" not in js["artifacts"]
        else:
            assert "warc" in js["artifacts"] and "warc_same_as" not in js

        # 4: recheck = "full" renders every source, whatever its history.
        config(cfg, store, 'recheck = "full"')
        blobs = blob_count(store)
        assert run_cli(cfg, "run-once", "--all").code == 0
        for url in urls.values():
            assert "dom" in manifest(store, history(cfg, url)[-1])["artifacts"]
    finally:
        site.stop()


def row(**fields) -> CaptureRow:
    values = {
        "id": "c1",
        "source_id": "s1",
        "captured_at": "2026-11-27T00:00:00Z",
        "verdict": "new",
        "reason": None,
        "http_status": 200,
        "final_url": "https://example.org/a",
        "error": None,
        "manifest_key": "captures/s1/x.json",
        "manifest_sha256": "0" * 64,
        "text_sha256": "1" * 64,
        "artifacts": {"raw": {"sha256": "2" * 64}},
        "rendering": {
            "needs_js": False,
            "raw_sha256": "2" * 64,
            "full_render_at": "2026-11-27T00:00:00Z",
            "etag": '"e"',
            "last_modified": None,
        },
    }
    values.update(fields)
    return CaptureRow(**values)


WEEK = timedelta(days=7)


def test_basis_only_after_a_settled_answer_without_script_content():
    assert basis_for(row(), NOW, WEEK) == RecheckBasis(
        capture_id="c1",
        final_url="https://example.org/a",
        raw_sha256="2" * 64,
        text_sha256="1" * 64,
        etag='"e"',
        last_modified=None,
        full_render_at="2026-11-27T00:00:00Z",
    )
    assert basis_for(None, NOW, WEEK) is None
    rendering = row().rendering
    for refused in (
        row(verdict="gone"),
        row(verdict="unreachable", http_status=None),
        row(verdict="moved"),
        row(http_status=404),
        row(rendering={**rendering, "needs_js": True}),
        row(rendering=None),  # a capture made before tiered re-checks existed
        row(rendering={**rendering, "full_render_at": "2026-11-19T00:00:00Z"}),  # too old
    ):
        assert basis_for(refused, NOW, WEEK) is None, refused


def test_cheap_outcome_confirms_unchanged_and_nothing_else():
    basis = basis_for(row(), NOW, WEEK)
    assert basis is not None
    assert "HTTP 304" in cheap_outcome(basis, 304, "https://example.org/a", b"", "text/html")
    for status, url in (
        (200, "https://example.org/b"),
        (404, basis.final_url),
        (500, basis.final_url),
    ):
        assert cheap_outcome(basis, status, url, b"<p>x</p>", "text/html") is None
    # Other bytes and other text: render.
    assert cheap_outcome(basis, 200, basis.final_url, b"<p>Other words</p>", "text/html") is None


def test_unchanged_payloads_store_no_second_warc(tmp_path):
    """The WARC rule without a browser: same payloads, same verdict -> no new WARC blob."""
    from crawler.app import App
    from crawler.archiving import store_capture
    from crawler.config import load_config
    from crawler.items import CaptureItem
    from crawler.sources import Citation, register

    app = App.open(load_config(str(config(tmp_path / "c.toml", tmp_path / "store"))))
    try:
        (record,) = register(app.archive, app.index, [Citation("https://example.org/a")])
        body = html("A", "<article><p>The statement was issued on Monday morning.</p></article>")

        def capture(when: str, warc: bytes, traffic: str) -> dict:
            item = CaptureItem(
                source_id=record["id"],
                url=record["canonical_url"],
                captured_at=when,
                final_url=record["canonical_url"],
                http_status=200,
                media_type="text/html",
                raw=body,
                dom=body,
                warc=warc,
                traffic_sha256=traffic,
            )
            return store_capture(app.archive, app.index, item).manifest

        first = capture("2026-11-20T00:00:00Z", b"WARC one", "a" * 64)
        same = capture("2026-11-21T00:00:00Z", b"WARC two (other dates)", "a" * 64)
        other = capture("2026-11-22T00:00:00Z", b"WARC three", "b" * 64)
        assert same["verdict"] == "unchanged" and same["warc_same_as"] == first["id"]
        assert "warc" not in same["artifacts"]
        assert not app.archive.has_blob(hashlib.sha256(b"WARC two (other dates)").hexdigest())
        assert "warc" in other["artifacts"] and "warc_same_as" not in other
    finally:
        app.close()
