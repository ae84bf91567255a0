"""Politeness: per-host limits, User-Agent, Retry-After, robots.txt when asked (real Chromium)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from cliutil import history, run_cli, write_config
from fixture_site import FixtureSite, html

from crawler.config import load_config
from crawler.runner import crawl_settings
from storage.ids import parse_rfc3339


@pytest.fixture
def site():
    site = FixtureSite().start()
    yield site
    site.stop()


def test_settings_carry_the_politeness_config(tmp_path: Path):
    config_path = tmp_path / "c.toml"
    config_path.write_text(
        '[crawl]\nuser_agent = "ExampleArchiver/1.0 (+mailto:ops@example.org)"\n'
        "[politeness]\nper_host_concurrency = 3\nper_host_delay = 2.5\n"
    )
    settings = crawl_settings(load_config(config_path), "http://127.0.0.1:9")
    assert settings["CONCURRENT_REQUESTS_PER_DOMAIN"] == 3
    assert settings["DOWNLOAD_DELAY"] == 2.5
    assert settings["USER_AGENT"].startswith("ExampleArchiver/1.0")
    assert settings["ROBOTSTXT_OBEY"] is False  # off by default for cited sources
    defaults = crawl_settings(load_config(tmp_path / "c.toml"), "http://127.0.0.1:9")
    assert defaults["PLAYWRIGHT_LAUNCH_OPTIONS"]["proxy"] == {"server": "http://127.0.0.1:9"}


@pytest.mark.browser
def test_user_agent_and_retry_after(tmp_path, site):
    agent = "ExampleArchiver/1.0 (+mailto:ops@example.org)"
    config = tmp_path / "c.toml"
    write_config(config, f"file://{tmp_path / 'store'}")
    config.write_text(config.read_text().replace("[crawl]\n", f'[crawl]\nuser_agent = "{agent}"\n'))
    site.pages["/busy"] = (503, "text/html", html("Busy", "<h1>Busy</h1>"), {"Retry-After": "3600"})
    assert run_cli(config, "add", site.url("/static.html"), site.url("/busy")).code == 0
    assert run_cli(config, "run-once", "--all").code == 0
    assert site.last_headers["/static.html"]["User-Agent"] == agent
    [busy] = history(config, site.url("/busy"))
    assert busy["verdict"] == "unreachable" and busy["reason"] == "HTTP 503"
    status = {r["url"]: r for r in json.loads(run_cli(config, "status", "--json").out)}
    captured = parse_rfc3339(busy["captured_at"])
    assert parse_rfc3339(status[site.url("/busy")]["next_due_at"]) == captured + timedelta(hours=1)
    # Without Retry-After the default interval applies.
    static_due = parse_rfc3339(status[site.url("/static.html")]["next_due_at"])
    static_at = parse_rfc3339(history(config, site.url("/static.html"))[0]["captured_at"])
    assert static_due == static_at + timedelta(hours=24)


@pytest.mark.browser
def test_robots_txt_is_obeyed_only_when_asked(tmp_path, site):
    site.pages["/robots.txt"] = (200, "text/plain", b"User-agent: *\nDisallow: /static.html\n", {})
    config = write_config(
        tmp_path / "c.toml",
        f"file://{tmp_path / 'store'}",
        extra="obey_robots_txt = true\n",
    )
    assert run_cli(config, "add", site.url("/static.html"), site.url("/js.html")).code == 0
    assert run_cli(config, "run-once", "--all").code == 0
    [refused] = history(config, site.url("/static.html"))
    assert refused["verdict"] == "unreachable" and "robots.txt" in refused["error"]
    assert history(config, site.url("/js.html"))[0]["verdict"] == "new"
    assert site.hits["/static.html"] == 0
    # robots.txt came through the egress proxy (it rewrites every request to Connection: close).
    assert site.last_headers["/robots.txt"].get("Connection") == "close"
