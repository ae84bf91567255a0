"""The command line's contract for bad input, locks, re-runs and reindex (real Chromium)."""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import sys

import pytest
from cliutil import history, run_cli, write_config
from fixture_site import FixtureSite, html

from crawler.config import load_config
from storage.index import Index


@pytest.fixture
def site():
    site = FixtureSite().start()
    yield site
    site.stop()


def test_invalid_url_exits_2_and_writes_nothing(tmp_path):
    config = write_config(tmp_path / "c.toml", f"file://{tmp_path / 'store'}")
    res = run_cli(config, "add", "https://ok.example/", "ftp://nope.example/file")
    assert res.code == 2
    assert res.err.strip() == (
        "citearchive: error: 'ftp://nope.example/file': only http and https URLs can be sources"
    )
    assert not (tmp_path / "store" / "sources").exists()  # all or nothing: not even the good one


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[crawl]\nallow_private_network = true\n", "unknown key 'crawl.allow_private_network'"),
        ("[crawl\n", "malformed TOML"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, text, needle):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    res = run_cli(config, "run-once", "--all")
    assert res.code == 2
    assert needle in res.err and str(config) in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [config]


def test_status_lists_sources_as_lines_and_as_json_one_object_per_line(tmp_path):
    config = write_config(tmp_path / "c.toml", f"file://{tmp_path / 'store'}")
    empty = run_cli(config, "status")
    assert (empty.code, empty.out.strip()) == (
        0,
        "no sources registered (use `citearchive add URL` or `import`)",
    )
    assert json.loads(run_cli(config, "status", "--json").out) == []
    urls = ["https://b.example/story", "https://a.example/ünï"]
    for url in urls:  # added one after the other: status lists them in that order
        assert run_cli(config, "add", url).code == 0
    lines = run_cli(config, "status").out.splitlines()
    assert [line.split() for line in lines] == [
        ["pending", "-", "never", "captured", "https://b.example/story"],
        ["pending", "-", "never", "captured", "https://a.example/ünï"],
    ]
    res = run_cli(config, "status", "--json")
    records = json.loads(res.out)
    assert [(r["url"], r["state"], r["latest"]) for r in records] == [
        ("https://b.example/story", "pending", None),
        ("https://a.example/ünï", "pending", None),
    ]
    # A line per source: `grep` and `wc -l` work on the machine-readable form too.
    assert [json.loads(line.rstrip(",")) for line in res.out.splitlines()[1:-1]] == records


def test_unknown_source_exits_3(tmp_path):
    config = write_config(tmp_path / "c.toml", f"file://{tmp_path / 'store'}")
    res = run_cli(config, "history", "https://never.example/")
    assert res.code == 3 and "not a registered source" in res.err


def test_overlapping_run_exits_5_at_once(tmp_path):
    config = write_config(tmp_path / "c.toml", f"file://{tmp_path / 'store'}")
    assert run_cli(config, "add", "https://example.org/").code == 0
    lock = load_config(config).lock_path
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = run_cli(config, "run-once", "--all")
    assert res.code == 5 and "another citearchive run is in progress" in res.err
    assert history(config, "https://example.org/") == []


@pytest.mark.browser
def test_rerun_verdicts_due_selection_and_reindex(tmp_path, site):
    config = write_config(tmp_path / "c.toml", f"file://{tmp_path / 'store'}")
    static, js = site.url("/static.html"), site.url("/js.html")
    assert run_cli(config, "add", static, js).code == 0
    first = run_cli(config, "run-once")  # never captured: both due
    # Nothing wrong, nothing on stderr: a cron job's mail stays empty (no library warnings).
    assert (first.code, first.err) == (0, "")
    res = run_cli(config, "run-once")  # captured just now: nothing due
    assert res.code == 0 and "captured 0 of 0 due sources" in res.out

    site.pages["/static.html"] = (
        200,
        "text/html",
        html(
            "Security alert",
            "<article><h1>Security alert</h1><p>Avoid the airport gates. US "
            "citizens at the Abbey Gate should leave at once.</p></article>",
        ),
        {},
    )
    assert run_cli(config, "run-once", "--all").code == 0
    assert [c["verdict"] for c in history(config, static)] == ["new", "changed"]
    assert [c["verdict"] for c in history(config, js)] == ["new", "unchanged"]

    # The second manifest chains to the first.
    first, second = history(config, static)
    manifest = json.loads((tmp_path / "store" / second["manifest"]).read_bytes())
    assert manifest["previous_manifest_sha256"] == first["manifest_sha256"]

    index_url = load_config(config).index_url
    index = Index(index_url)
    before = index.dump()
    index.close()
    res = run_cli(config, "reindex")
    assert res.code == 0 and "reindexed 2 sources, 4 captures" in res.out
    index = Index(index_url)
    assert index.dump() == before
    index.close()


@pytest.mark.browser
def test_default_config_never_fetches_loopback(tmp_path, site):
    config = write_config(tmp_path / "c.toml", f"file://{tmp_path / 'store'}", allow_private=False)
    port = site.server.server_port
    urls = [
        site.url("/static.html"),
        f"http://localhost:{port}/js.html",
        f"https://localhost:{port}/tunnel",
    ]
    assert run_cli(config, "add", *urls).code == 0
    res = run_cli(config, "run-once", "--all")
    assert res.code == 0 and "3 unreachable" in res.out
    assert sum(site.hits.values()) == 0
    for url in urls:
        [cap] = history(config, url)
        assert cap["verdict"] == "unreachable" and cap["http_status"] is None
        assert cap["error"].startswith("refused:") and "not a public address" in cap["error"]


@pytest.mark.browser
def test_runs_are_logged(tmp_path, site):
    config = write_config(tmp_path / "c.toml", f"file://{tmp_path / 'store'}")
    assert run_cli(config, "add", site.url("/static.html"), site.url("/gone.html")).code == 0
    assert run_cli(config, "run-once").code == 0
    assert run_cli(config, "run-once", "--all", "--limit", "1").code == 0
    runs = json.loads(run_cli(config, "runs", "--json").out)
    assert [(r["kind"], r["status"], r["due"]) for r in runs] == [
        ("run-once", "ok", 1),
        ("run-once", "ok", 2),
    ]
    assert runs[1]["counts"] == {"new": 1, "gone": 1}
    assert runs[0]["ended_at"] >= runs[0]["started_at"] >= runs[1]["ended_at"]


@pytest.mark.browser
def test_sigterm_during_set_up_ends_the_run_cleanly(tmp_path, site):
    """SIGTERM while run-once registers its lists (before the crawl): exit 0, logged."""
    listing = tmp_path / "many.toml"
    listing.write_text(
        "".join(f'[[citation]]\nurl = "{site.url("/static.html")}?n={i}"\n' for i in range(3000))
    )
    config = write_config(
        tmp_path / "c.toml",
        f"file://{tmp_path / 'store'}",
        extra='\n[sources]\nlists = ["many.toml"]\n',
    )
    lock = load_config(config).lock_path
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "--config", str(config), "run-once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The run holds its lock from the start of set-up: that is the event to wait for.
    while proc.poll() is None:
        if lock.exists():
            with open(lock, "a") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(fh, fcntl.LOCK_UN)
                except BlockingIOError:
                    break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "interrupted" in out
    [run] = json.loads(run_cli(config, "runs", "--json").out)
    assert run["status"] == "interrupted" and run["ended_at"]
    store = tmp_path / "store"
    for manifest in store.glob("captures/*/*.json"):
        for meta in json.loads(manifest.read_text())["artifacts"].values():
            sha = meta["sha256"]
            assert (store / "blobs" / "sha256" / sha[:2] / sha[2:4] / sha).exists()
