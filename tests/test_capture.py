"""End-to-end capture with real Chromium against the local fixture site (file store)."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cliutil import history, run_cli, write_config
from fixture_site import FixtureSite
from warcio.archiveiterator import ArchiveIterator

pytestmark = pytest.mark.browser

PATHS = [
    "/static.html",
    "/js.html",
    "/doc.pdf",
    "/data.json",
    "/pixel.png",
    "/redirect",
    "/gone.html",
]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """One real crawl of the fixture site: (site, config path, store dir, dead url)."""
    tmp = tmp_path_factory.mktemp("capture")
    site = FixtureSite().start()
    store = tmp / "store"
    config = write_config(tmp / "c.toml", f"file://{store}")
    dead = f"http://127.0.0.1:{_closed_port()}/nothing-here"
    res = run_cli(config, "add", *[site.url(p) for p in PATHS], dead)
    assert res.code == 0, res.err
    res = run_cli(config, "run-once", "--all")
    assert res.code == 0, res.err
    yield site, config, store, dead, res
    site.stop()


def _blob(store: Path, sha: str) -> bytes:
    return (store / "blobs" / "sha256" / sha[:2] / sha[2:4] / sha).read_bytes()


def test_summary_line_counts_every_source(captured):
    _, _, _, _, res = captured
    assert "captured 8 of 8 due sources" in res.out
    assert "1 unreachable" in res.out and "1 gone" in res.out and "6 new" in res.out


def test_static_page_keeps_every_artifact(captured):
    site, config, store, _, _ = captured
    [cap] = history(config, site.url("/static.html"))
    assert cap["verdict"] == "new" and cap["http_status"] == 200
    assert cap["final_url"] == site.url("/static.html")
    assert set(cap["artifacts"]) == {"raw", "dom", "screenshot", "text", "warc"}
    assert _blob(store, cap["raw_sha256"]) == site.pages["/static.html"][2]
    assert _blob(store, cap["screenshot_sha256"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "leave immediately" in _blob(store, cap["artifacts"]["text"]["sha256"]).decode()


def test_every_artifact_hash_matches_the_stored_bytes(captured):
    site, config, store, _, _ = captured
    checked = 0
    for path in PATHS:
        for cap in history(config, site.url(path)):
            for name, meta in cap["artifacts"].items():
                data = _blob(store, meta["sha256"])
                assert hashlib.sha256(data).hexdigest() == meta["sha256"], (path, name)
                assert len(data) == meta["size"]
                checked += 1
    assert checked >= 15


def test_manifest_records_status_headers_timings_and_chain(captured):
    site, config, store, _, _ = captured
    [cap] = history(config, site.url("/static.html"))
    manifest = json.loads((store / cap["manifest"]).read_bytes())
    assert (
        hashlib.sha256((store / cap["manifest"]).read_bytes()).hexdigest() == cap["manifest_sha256"]
    )
    headers = {k.lower(): v for k, v in manifest["headers"]}
    assert headers["content-type"].startswith("text/html")
    assert manifest["timings"]["navigate_s"] > 0 and "settle_s" in manifest["timings"]
    assert manifest["previous_manifest_sha256"] is None
    assert manifest["resources"] == 2  # the CSS and the image


def test_script_rendered_text_is_in_dom_and_text(captured):
    site, config, store, _, _ = captured
    [cap] = history(config, site.url("/js.html"))
    assert b"Rendered by script 8125" in _blob(store, cap["dom_sha256"])
    assert b"Rendered by script 8125" not in _blob(store, cap["raw_sha256"])
    assert "Rendered by script 8125" in _blob(store, cap["artifacts"]["text"]["sha256"]).decode()


def test_pdf_is_kept_raw_with_its_text(captured):
    site, config, store, _, _ = captured
    [cap] = history(config, site.url("/doc.pdf"))
    assert cap["http_status"] == 200 and cap["verdict"] == "new"
    assert _blob(store, cap["raw_sha256"]) == site.pages["/doc.pdf"][2]
    assert (
        "Embassy alert in a PDF 4471" in _blob(store, cap["artifacts"]["text"]["sha256"]).decode()
    )


@pytest.mark.parametrize("path", ["/data.json", "/pixel.png"])
def test_non_html_sources_keep_their_served_bytes(captured, path):
    site, config, store, _, _ = captured
    [cap] = history(config, site.url(path))
    assert cap["http_status"] == 200 and cap["verdict"] == "new"
    assert _blob(store, cap["raw_sha256"]) == site.pages[path][2]
    assert cap["artifacts"]["raw"]["media_type"] == site.pages[path][1]


def test_redirect_chain_and_final_url(captured):
    site, config, store, _, _ = captured
    [cap] = history(config, site.url("/redirect"))
    assert cap["final_url"] == site.url("/static.html")
    manifest = json.loads((store / cap["manifest"]).read_bytes())
    assert manifest["redirect_chain"] == [
        {"url": site.url("/redirect"), "status": 301, "location": "/static.html"}
    ]


def test_not_found_is_gone_with_its_status(captured):
    site, config, _, _, _ = captured
    [cap] = history(config, site.url("/gone.html"))
    assert cap["verdict"] == "gone" and cap["http_status"] == 404


def test_dead_server_is_unreachable_and_never_live(captured):
    _, config, _, dead, _ = captured
    [cap] = history(config, dead)
    assert cap["verdict"] == "unreachable"
    assert cap["http_status"] is None and cap["final_url"] is None
    assert "ERR_CONNECTION_REFUSED" in cap["error"] or "refused" in cap["error"].lower()
    assert "raw" not in cap["artifacts"]


def test_warc_is_valid_and_holds_the_browsers_traffic(captured, tmp_path):
    site, config, _, _, _ = captured
    [cap] = history(config, site.url("/js.html"))
    warc = tmp_path / "js.warc.gz"
    res = run_cli(config, "get", site.url("/js.html"), "--artifact", "warc", "-o", str(warc))
    assert res.code == 0, res.err
    assert hashlib.sha256(warc.read_bytes()).hexdigest() == cap["warc_sha256"]
    check = subprocess.run(
        [Path(sys.executable).parent / "warcio", "check", "-v", str(warc)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    kinds: dict[str, set[str]] = {}
    with open(warc, "rb") as fh:
        for record in ArchiveIterator(fh):
            uri = record.rec_headers.get_header("WARC-Target-URI") or ""
            kinds.setdefault(record.rec_type, set()).add(uri)
            if record.rec_type == "response" and uri.endswith("/data.json"):
                assert record.content_stream().read() == site.pages["/data.json"][2]
    assert {site.url("/js.html"), site.url("/data.json")} <= kinds["response"]
    assert {site.url("/js.html"), site.url("/data.json")} <= kinds["request"]
    assert {f"urn:dom:{site.url('/js.html')}", f"urn:screenshot:{site.url('/js.html')}"} <= kinds[
        "resource"
    ]


def test_static_warc_holds_css_and_image(captured):
    site, config, store, _, _ = captured
    [cap] = history(config, site.url("/static.html"))
    with open(
        store
        / "blobs"
        / "sha256"
        / cap["warc_sha256"][:2]
        / cap["warc_sha256"][2:4]
        / cap["warc_sha256"],
        "rb",
    ) as fh:
        uris = {
            r.rec_headers.get_header("WARC-Target-URI")
            for r in ArchiveIterator(fh)
            if r.rec_type == "response"
        }
    assert {site.url("/static.html"), site.url("/style.css"), site.url("/pixel.png")} <= uris


def test_get_writes_the_artifact_and_status_lists_sources(captured, tmp_path):
    site, config, _, _, _ = captured
    out = tmp_path / "dom.html"
    assert run_cli(config, "get", site.url("/static.html"), "-o", str(out)).code == 0
    assert b"Security alert" in out.read_bytes()
    res = run_cli(config, "status", "--json")
    urls = {r["url"]: r["verdict"] for r in json.loads(res.out)}
    assert urls[site.url("/static.html")] == "new" and urls[site.url("/gone.html")] == "gone"
