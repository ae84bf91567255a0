"""Tabs re-used across captures (spiders/tabs.py), proved with real Chromium.

Which tab rendered a page is read from the fixture site's own request log: each page's script
keeps an id in sessionStorage, which lives as long as the tab, and reports it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from cliutil import history, run_cli, write_config
from fixture_site import FixtureSite, html
from playwright.async_api import async_playwright
from warcio.archiveiterator import ArchiveIterator

from crawler.runner import CHROMIUM_ARGS
from spiders.tabs import ContextRecycler, TabLanes
from storage.archive import blob_key

pytestmark = pytest.mark.browser

HTML = "text/html; charset=utf-8"
TAB_SCRIPT = """<script>
let tab = sessionStorage.getItem("tab");
if (!tab) { tab = String(Math.random()).slice(2); sessionStorage.setItem("tab", tab); }
fetch("/seen?" + tab);
</script>"""
PAGES = [f"/t{n}.html" for n in range(4)]


def chatty(name: str) -> bytes:
    """A page that never stops fetching ``/chatter-<name>``."""
    script = f'<script>setInterval(() => fetch("/chatter-{name}?" + Date.now()), 20);</script>'
    return html(f"Chatty {name}", f"<p>Page {name} keeps talking.</p>{script}")


@pytest.fixture
def site():
    site = FixtureSite()
    for n, path in enumerate(PAGES):
        body = f"<h1>Notice {n}</h1><p>Embassy notice number {n} of four.</p>{TAB_SCRIPT}"
        site.pages[path] = (200, HTML, html(f"Notice {n}", body), {})
    site.pages["/seen"] = (204, "text/plain", b"", {})
    for name in "ab":
        site.pages[f"/chatty-{name}.html"] = (200, HTML, chatty(name), {})
        site.pages[f"/chatter-{name}"] = (204, "text/plain", b"", {})
    site.start()
    yield site
    site.stop()


def tabs_seen(site: FixtureSite) -> list[str]:
    return [p.split("?", 1)[1] for p in site.log if p.startswith("/seen?")]


def capture(tmp: Path, name: str, urls: list[str], crawl_extra: str) -> Path:
    config = write_config(tmp / f"{name}.toml", (tmp / name).as_uri(), crawl_extra=crawl_extra)
    assert run_cli(config, "add", *urls).code == 0
    res = run_cli(config, "run-once", "--all")
    assert res.code == 0, res.err
    assert f"captured {len(urls)} of {len(urls)}" in res.out
    return config


@pytest.mark.parametrize(
    ("concurrency", "pages_per_context", "tabs"),
    [(1, 50, {1}), (1, 2, {2}), (2, 50, {1, 2})],
)
def test_each_lane_renders_its_captures_in_one_tab(
    site, tmp_path, concurrency, pages_per_context, tabs
):
    extra = f"concurrency = {concurrency}\npages_per_context = {pages_per_context}"
    capture(tmp_path, "store", [site.url(p) for p in PAGES], extra)
    seen = tabs_seen(site)
    assert len(seen) == len(PAGES)  # each page rendered once
    # A used-up context closes its tab: 4 pages, 2 per context -> 2 tabs.
    assert len(set(seen)) in tabs


def test_a_kept_tab_renders_a_page_as_a_fresh_tab_does(site, tmp_path):
    urls = [site.url(p) for p in PAGES]
    kept = capture(tmp_path, "kept", urls, "concurrency = 1")
    assert len(set(tabs_seen(site))) == 1
    site.log.clear()
    fresh = capture(tmp_path, "fresh", urls, "concurrency = 1\npages_per_context = 1")
    assert len(set(tabs_seen(site))) == len(PAGES)
    for url in urls:
        [a], [b] = history(kept, url), history(fresh, url)
        assert a["screenshot_sha256"] == b["screenshot_sha256"], url
        for artifact in ("dom", "text"):
            assert a["artifacts"][artifact]["sha256"] == b["artifacts"][artifact]["sha256"], url


def _warc_urls(store: Path, sha: str) -> list[str]:
    with (store / blob_key(sha)).open("rb") as stream:
        return [r.rec_headers.get_header("WARC-Target-URI") or "" for r in ArchiveIterator(stream)]


def test_nothing_of_a_page_runs_on_into_the_next_capture(site, tmp_path):
    # The server thinks 0.5 s before each page: a page still running in the tab meanwhile
    # would fetch its chatter about 25 times into the next capture's recorder.
    for name in "ab":
        site.delays[f"/chatty-{name}.html"] = 0.5
    urls = [site.url(f"/chatty-{name}.html") for name in "ab"]
    config = capture(tmp_path, "store", urls, "concurrency = 1")
    first, second = sorted("ab", key=lambda n: site.log.index(f"/chatty-{n}.html"))
    later = site.log[site.log.index(f"/chatty-{second}.html") :]
    assert not [p for p in later if p.startswith(f"/chatter-{first}")]
    for name, other in ("ab", "ba"):
        [cap] = history(config, site.url(f"/chatty-{name}.html"))
        found = _warc_urls(tmp_path / "store", cap["artifacts"]["warc"]["sha256"])
        assert any(f"/chatter-{name}?" in u for u in found)
        assert not any(f"/chatter-{other}" in u for u in found)


async def _lanes_keep_and_close_tabs() -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=CHROMIUM_ARGS,
            chromium_sandbox=os.geteuid() != 0,
        )
        lanes = TabLanes(1, ContextRecycler(pages_per_context=2))
        closed: list[str] = []
        context = await browser.new_context()
        context.on("close", lambda _: closed.append("capture-0"))

        lane, name = await lanes.acquire()
        assert (name, lane.page) == ("capture-0", None)
        waiting = asyncio.ensure_future(lanes.acquire())  # the only lane is taken
        page = await context.new_page()
        await page.set_content("<p>first</p>")
        assert not waiting.done()
        await lanes.release(lane, page, name, keep=True)
        lane, name = await waiting
        assert (name, lane.page, page.url) == ("capture-0", page, "about:blank")

        # The context's second capture uses it up: the tab and the context close.
        await lanes.release(lane, page, name, keep=True)
        assert page.is_closed() and closed == ["capture-0"]
        lane, name = await lanes.acquire()
        assert (name, lane.page) == ("capture-1", None)

        other = await browser.new_context()
        page = await other.new_page()
        await lanes.release(lane, page, name, keep=False)  # a failed capture's tab
        assert page.is_closed() and lane.page is None
        lane, name = await lanes.acquire()
        page = await other.new_page()
        await page.close()  # closed under the capture (its deadline, a crash)
        await lanes.release(lane, page, name, keep=True)
        assert lane.page is None
        await browser.close()


def test_lanes_keep_a_clean_tab_and_close_the_rest():
    asyncio.run(_lanes_keep_and_close_tabs())


def test_rechecks_that_must_render_wait_for_the_one_lane(site, tmp_path):
    # Tiered re-checks: a plain fetch first, a render only for what changed. With one lane
    # those renders are requested from callbacks while start() waits for the same lane.
    plain = [f"/plain{n}.html" for n in range(4)]
    for n, path in enumerate(plain):
        site.pages[path] = (200, HTML, html(f"Plain {n}", f"<p>Plain notice {n}.</p>"), {})
    urls = [site.url(p) for p in plain + PAGES[:2]]
    config = capture(tmp_path, "store", urls, "concurrency = 1")
    for path in plain[:2]:
        site.pages[path] = (200, HTML, html("Edited", "<p>This notice was withdrawn.</p>"), {})
    res = run_cli(config, "run-once", "--all", timeout=120)
    assert res.code == 0, res.err
    verdicts = sorted(history(config, url)[-1]["verdict"] for url in urls)
    assert verdicts == ["changed", "changed", "unchanged", "unchanged", "unchanged", "unchanged"]
