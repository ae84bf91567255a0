"""The bare limit: a plain Playwright loop over the pages, with no archive around it.

Same Chromium binary, same launch flags (minus the egress proxy), same viewport and the
same number of pages in flight as citearchive. Each page is opened, allowed to reach
network idle (so script-written text is there, as citearchive waits for it too), and its
DOM and full-page screenshot are taken and thrown away.
"""

from __future__ import annotations

import asyncio
import os
import time

from playwright.async_api import async_playwright

from crawler.runner import CHROMIUM_ARGS


async def _loop(urls: list[str], concurrency: int, chromium: str, viewport: dict) -> float:
    args = [a for a in CHROMIUM_ARGS if not a.startswith("--proxy")]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=args,
            chromium_sandbox=os.geteuid() != 0,
        )
        context = await browser.new_context(viewport=viewport)
        start = time.monotonic()

        async def worker() -> None:
            while not queue.empty():
                url = queue.get_nowait()
                page = await context.new_page()
                try:
                    await page.goto(url, wait_until="networkidle", timeout=30_000)
                    await page.content()
                    await page.screenshot(full_page=True, type="png")
                finally:
                    await page.close()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - start
        await context.close()
        await browser.close()
    return elapsed


def bare_loop(
    urls: list[str],
    concurrency: int,
    chromium: str = "/usr/bin/chromium",
    viewport: dict | None = None,
) -> float:
    """Seconds the loop needs for ``urls`` once the browser is up."""
    return asyncio.run(
        _loop(urls, concurrency, chromium, viewport or {"width": 1280, "height": 900})
    )


if __name__ == "__main__":
    # python bare.py CONCURRENCY URLS_FILE: prints the seconds (run by run.py under the
    # same RSS/CPU sampling as citearchive).
    import sys
    from pathlib import Path

    print(bare_loop(Path(sys.argv[2]).read_text().split(), int(sys.argv[1])))
