"""Status and due selection with many registered sources.

Fills a fresh index with N sources (each with two captures, one of every tenth source
unreachable) straight through SQLAlchemy, then times what a user waits for: the
`status` command (whole process, as a cron job or a person runs it, output discarded),
`status --json`, and selecting the due sources (in process, as `run-once` does it).
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crawler.app import App
from crawler.config import load_config
from storage import index as index_module
from storage.ids import format_rfc3339, source_id


def _fill(url: str, count: int) -> None:
    index = index_module.Index(url)
    now = datetime.now(UTC)
    sources, captures = [], []
    for n in range(count):
        canonical = f"https://news{n % 500}.example/story/{n}"
        sid = source_id(canonical)
        when = [format_rfc3339(now - timedelta(hours=h + n % 48)) for h in (48, 1)]
        sources.append(
            {
                "id": sid,
                "canonical_url": canonical,
                "urls": [canonical],
                "added_at": format_rfc3339(now - timedelta(days=10)),
                "citations": [{"document": "bench.md", "passage": None}],
                "removed_at": None,
                "last_captured_at": when[1],
                "next_due_at": format_rfc3339(now + timedelta(hours=(n % 48) - 24)),
            }
        )
        for i, at in enumerate(when):
            verdict = "unreachable" if (i == 1 and n % 10 == 0) else ("new", "unchanged")[i]
            captures.append(
                {
                    "id": f"{n:08x}{i:08x}",
                    "source_id": sid,
                    "captured_at": at,
                    "verdict": verdict,
                    "reason": "",
                    "http_status": None if verdict == "unreachable" else 200,
                    "final_url": canonical,
                    "error": None,
                    "manifest_key": f"captures/{sid}/{i}.json",
                    "manifest_sha256": "0" * 64,
                    "text_sha256": "1" * 64,
                    "artifacts": {},
                    "next_due_at": None,
                }
            )
    with index.engine.begin() as conn:
        conn.execute(index_module.sources_table.insert(), sources)
        conn.execute(index_module.captures_table.insert(), captures)
        index.refresh_all_sources(conn)
    index.close()


def _timed_cli(exe: str, config: Path, *args: str) -> float:
    start = time.monotonic()
    subprocess.run([exe, "--config", str(config), *args], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def measure_scale(root: Path, count: int, exe: str) -> dict:
    root.mkdir(parents=True)
    config_path = root / "citearchive.toml"
    config_path.write_text(f'[store]\nurl = "file://{root / "store"}"\n')
    config = load_config(str(config_path))
    _fill(config.index_url, count)
    result = {"scale_sources": count}
    _timed_cli(exe, config_path, "status")  # warm the page cache once, as a second run would
    result["scale_status_s"] = round(_timed_cli(exe, config_path, "status"), 3)
    result["scale_status_json_s"] = round(_timed_cli(exe, config_path, "status", "--json"), 3)
    app = App.open(config)
    try:
        start = time.monotonic()
        due = app.due_sources(everything=False)
        result["scale_due_select_s"] = round(time.monotonic() - start, 3)
        result["scale_due_sources"] = len(due)
        start = time.monotonic()
        app.due_sources(everything=False, limit=config.schedule.batch_size)
        result["scale_due_select_batch_s"] = round(time.monotonic() - start, 3)
        start = time.monotonic()
        app.count_due()
        result["scale_due_count_s"] = round(time.monotonic() - start, 3)
    finally:
        app.close()
    return result
