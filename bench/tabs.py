"""A new tab per page against one kept tab: Chromium's CPU per page, side by side.

What spiders/tabs.py rests on. Each mode is one child process (``--child new|kept``) that
launches Chromium as the crawl does (crawler/runner.py's arguments) and renders ``--pages``
small pages of a local site the way a capture does (navigate, network idle, DOM, full-page
screenshot); ``kept`` blanks the tab between pages as the spider does. CPU is summed over
the child's whole process tree (bench/procs.py), Chromium's renderers included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from benchsite import SlowSite  # noqa: E402
from procs import run_sampled  # noqa: E402


async def render(mode: str, pages: int) -> None:
    from playwright.async_api import async_playwright

    from crawler.runner import CHROMIUM_ARGS

    base = SlowSite(0.0).base
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=CHROMIUM_ARGS,
            chromium_sandbox=os.geteuid() != 0,
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = None
        for n in range(pages):
            if page is None:
                page = await context.new_page()
            await page.goto(f"{base}/p{n}")
            await page.wait_for_load_state("networkidle")
            await page.content()
            await page.screenshot(full_page=True, type="png")
            if mode == "kept":
                await page.goto("about:blank")
            else:
                await page.close()
                page = None
        await context.close()
        await browser.close()


def measure_tabs(pages: int = 30) -> dict:
    """The figures, keys prefixed ``tabs_`` for bench/run.py's result file."""
    r: dict = {"tabs_pages": pages}
    for mode in ("new", "kept"):
        sampled = run_sampled([sys.executable, __file__, "--child", mode, "--pages", str(pages)])
        r[f"tabs_{mode}_cpu_s_per_page"] = round(sampled.cpu_seconds / pages, 3)
        r[f"tabs_{mode}_s_per_page"] = round(sampled.seconds / pages, 3)
    r["tabs_new_over_kept_cpu"] = round(
        r["tabs_new_cpu_s_per_page"] / r["tabs_kept_cpu_s_per_page"], 2
    )
    return r


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--child", choices=("new", "kept"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(render(args.child, args.pages))
        return 0
    r = measure_tabs(args.pages)
    for key, value in r.items():
        print(f"{key:32} {value}")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
