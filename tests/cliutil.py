"""Drive the citearchive command line as a user or a cron script would: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    out: str
    err: str


def write_config(
    path: Path,
    store_url: str,
    *,
    allow_private: bool = True,
    page_timeout: float = 20,
    extra: str = "",
    crawl_extra: str = "",
) -> Path:
    """A config for tests: ``crawl_extra`` goes in [crawl], ``extra`` after [politeness]."""
    path.write_text(
        f'[store]\nurl = "{store_url}"\n\n[crawl]\nallow_private_networks = '
        f"{'true' if allow_private else 'false'}\nsettle_timeout = 5\n"
        f"page_timeout = {page_timeout}\n{crawl_extra}\n\n[politeness]\nper_host_delay = 0\n"
        f"per_host_concurrency = 8\n{extra}"
    )
    return path


def run_cli(
    config: Path | None, *args: str, env: dict | None = None, timeout: float = 300
) -> Result:
    cmd = [sys.executable, "-m", "crawler.cli"]
    if config is not None:
        cmd += ["--config", str(config)]
    proc = subprocess.run(
        cmd + list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def history(config: Path, url: str, env: dict | None = None) -> list[dict]:
    res = run_cli(config, "history", url, "--json", env=env)
    assert res.code == 0, res.err
    return json.loads(res.out)


def spawn_cli(config: Path, *args: str) -> subprocess.Popen[str]:
    """The command line started in the background (a daemon, or runs that race)."""
    return subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def manifests_by_url(store: Path) -> dict[str, dict]:
    """Each source's capture manifest (one run: one each), by source URL, read from the store."""
    found: dict[str, dict] = {}
    for path in (store / "captures").glob("*/*.json"):
        manifest = json.loads(path.read_bytes())
        assert manifest["url"] not in found
        found[manifest["url"]] = manifest
    return found
