"""`get URL --at TIME`: Memento boundaries over a store built without a browser."""

from __future__ import annotations

import hashlib
import json

import pytest
from cliutil import run_cli, write_config
from fixture_site import html

from crawler.app import App
from crawler.archiving import store_capture
from crawler.config import load_config
from crawler.items import CaptureItem
from crawler.sources import Citation, register

URL = "https://example.org/alert"
TIMES = ["2026-01-02T10:00:00.000000Z", "2026-01-05T12:30:00.500000Z"]


@pytest.fixture
def site(tmp_path):
    config = write_config(tmp_path / "c.toml", f"file://{tmp_path / 'store'}")
    app = App.open(load_config(str(config)))
    archive, index = app.archive, app.index
    try:
        [record] = register(archive, index, [Citation(URL)])
        for n, when in enumerate(TIMES):
            item = CaptureItem(
                source_id=record["id"],
                url=URL,
                captured_at=when,
                final_url=URL,
                http_status=200,
                media_type="text/html",
                dom=html("Alert", f"<article><p>Version {n} of the alert text.</p></article>"),
            )
            store_capture(archive, index, item)
        rows = index.captures(record["id"])
    finally:
        app.close()
    return config, rows


def _get(config, *args):
    return run_cli(config, "get", URL, *args)


def _dom_sha(row):
    return row.artifacts["dom"]["sha256"]


def test_index_holds_the_two_captures(site):
    _, rows = site
    assert [r.captured_at for r in rows] == TIMES


def test_before_the_first_capture_is_not_found(site):
    config, _ = site
    res = _get(config, "--at", "2026-01-02T09:59:59.999999Z")
    assert res.code == 3
    assert res.out == ""
    assert "no capture" in res.err and "at or before 2026-01-02T09:59:59" in res.err
    assert len(res.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (TIMES[0], 0),  # exactly at the first capture
        ("2026-01-02T10:00:00Z", 0),
        ("2026-01-02T11:00:00+01:00", 0),  # the same instant in another offset
        ("2026-01-04T00:00:00Z", 0),  # between the two: the earlier
        ("2026-01-05T12:30:00.499999Z", 0),  # a microsecond before the second
        (TIMES[1], 1),  # exactly at the second
        ("2026-01-05T12:30:00.500000+00:00", 1),
        ("2030-01-01T00:00:00Z", 1),  # after the last: the last
        ("20260104000000", 0),  # 14-digit form
        ("2026-01-02", 0),  # a date: the end of that day
        ("2026-01-05", 1),
    ],
)
def test_boundaries_return_the_exact_bytes(site, at, expected):
    config, rows = site
    res = run_cli_bytes(config, "get", URL, "--at", at)
    assert res.returncode == 0, res.stderr
    assert hashlib.sha256(res.stdout).hexdigest() == _dom_sha(rows[expected])


def test_a_date_before_the_first_capture_day_is_not_found(site):
    config, _ = site
    res = _get(config, "--at", "2026-01-01")
    assert res.code == 3 and "2026-01-01T23:59:59.999999" in res.err


def test_json_gives_that_captures_metadata(site):
    config, rows = site
    for at, n in (("2026-01-03T00:00:00Z", 0), (TIMES[1], 1), ("2026-01-05", 1)):
        res = _get(config, "--at", at, "--json")
        assert res.code == 0, res.err
        meta = json.loads(res.out)
        assert meta["id"] == rows[n].id
        assert meta["captured_at"] == TIMES[n]
        assert meta["verdict"] == ("new" if n == 0 else "changed")
        assert meta["dom_sha256"] == _dom_sha(rows[n])


def test_without_at_the_latest(site):
    config, rows = site
    res = run_cli_bytes(config, "get", URL)
    assert res.returncode == 0
    assert hashlib.sha256(res.stdout).hexdigest() == _dom_sha(rows[-1])


def test_other_artifact_and_output_file(site, tmp_path):
    config, rows = site
    out = tmp_path / "text.txt"
    res = _get(config, "--at", "2026-01-04", "--artifact", "text", "-o", str(out))
    assert res.code == 0, res.err
    assert hashlib.sha256(out.read_bytes()).hexdigest() == rows[0].artifacts["text"]["sha256"]


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "2026-01-02T25:00:00Z", ""])
def test_a_bad_time_is_exit_2(site, bad):
    config, _ = site
    res = _get(config, "--at", bad)
    assert res.code == 2, (bad, res.err)
    assert res.out == ""
    assert "--at" in res.err


def test_unknown_source_is_exit_3(site):
    config, _ = site
    res = run_cli(config, "get", "https://example.org/never", "--at", "2026-01-04")
    assert res.code == 3 and "https://example.org/never" in res.err


def run_cli_bytes(config, *args):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "crawler.cli", "--config", str(config), *args],
        capture_output=True,
        timeout=120,
    )
