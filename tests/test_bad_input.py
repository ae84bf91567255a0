"""Bad input, one table: each case gets one stderr line naming the input, its documented
exit code, no traceback, and leaves the store and index as they were.

Cases run through ``crawler.cli.main`` in-process (stderr captured), so the table stays
fast; a few run through the real command in a subprocess to prove the same from outside.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import s3server
from cliutil import run_cli
from fixture_site import html

from crawler import cli as cli_module
from crawler.app import App
from crawler.archiving import store_capture
from crawler.cli import main
from crawler.config import load_config
from crawler.items import CaptureItem
from crawler.sources import Citation, register

URL = "https://example.org/alert"
GOOD = (
    '[store]\nurl = "file://{tmp}/store"\n\n[crawl]\nallow_private_networks = true\n'
    "page_timeout = 5\n"
)
LONG_URL = "https://example.org/" + "a" * 9000


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # after --config; "{tmp}" is the case's folder
    code: int
    needle: str  # what the error line must name ("{tmp}" allowed)
    toml: str = GOOD  # the config file's text
    setup: str = ""  # a SETUPS entry preparing the store
    no_config: bool = False  # do not pass --config


def _toml(extra: str, store: str = 'url = "file://{tmp}/store"') -> str:
    return f"[store]\n{store}\n{extra}\n"


ADD = ("add", "https://example.org/new")
CASES = [
    # URLs that cannot be sources
    Case("not-a-url", ("add", "not a url"), 2, "'not a url'"),
    Case("no-host", ("add", "http://"), 2, "'http://'"),
    Case("space-in-host", ("add", "https://exa mple.org/"), 2, "'https://exa mple.org/'"),
    Case("broken-ipv6", ("add", "http://[::1/"), 2, "'http://[::1/'"),
    Case("bad-port", ("add", "https://example.org:99999/"), 2, "example.org:99999"),
    Case("empty-url", ("add", ""), 2, "''"),
    Case("nul-in-url", ("add", "https://exa\x00mple.org/"), 2, "exa\\x00mple"),
    Case("ftp", ("add", "ftp://example.org/f"), 2, "'ftp://example.org/f'"),
    Case("file", ("add", "file:///etc/passwd"), 2, "'file:///etc/passwd'"),
    Case("data", ("add", "data:text/html,hi"), 2, "'data:text/html,hi'"),
    Case("javascript", ("add", "javascript:alert(1)"), 2, "'javascript:alert(1)'"),
    Case("mailto", ("add", "mailto:someone@example.org"), 2, "mailto:someone@example.org"),
    Case("gopher", ("add", "gopher://example.org/"), 2, "'gopher://example.org/'"),
    Case("websocket", ("add", "ws://example.org/socket"), 2, "'ws://example.org/socket'"),
    Case("overlong-url", ("add", LONG_URL), 2, "https://example.org/aaaa"),
    Case("good-then-bad", ("add", URL, "ftp://x.example/"), 2, "'ftp://x.example/'"),
    Case("get-bad-url", ("get", "javascript:alert(1)"), 2, "'javascript:alert(1)'"),
    # Config files
    Case("toml-unclosed-table", ADD, 2, "malformed TOML", toml="[crawl\n"),
    Case("toml-no-value", ADD, 2, "malformed TOML", toml="[store]\nurl =\n"),
    Case("toml-duplicate-key", ADD, 2, "malformed TOML", toml=_toml('url = "x"')),
    Case("unknown-section", ADD, 2, "unknown key 'crawler'", toml=GOOD + "[crawler]\nx = 1\n"),
    Case(
        "unknown-key",
        ADD,
        2,
        "unknown key 'crawl.concurency'",
        toml=GOOD + "concurency = 2\n",
    ),
    Case("unknown-store-key", ADD, 2, "unknown key 'store.bucket'", toml=_toml('bucket = "b"')),
    Case("base-dir-key", ADD, 2, "unknown key 'base_dir'", toml='base_dir = "/"\n' + GOOD),
    Case(
        "wrong-type-int",
        ADD,
        2,
        "'crawl.concurrency'",
        toml=GOOD + 'concurrency = "four"\n',
    ),
    Case("out-of-range-int", ADD, 2, "'crawl.concurrency'", toml=GOOD + "concurrency = 0\n"),
    Case(
        "negative-timeout", ADD, 2, "'crawl.page_timeout'", toml=_toml("[crawl]\npage_timeout = -1")
    ),
    Case("store-url-not-string", ADD, 2, "'store.url'", toml="[store]\nurl = 42\n"),
    Case(
        "wrong-type-bool",
        ADD,
        2,
        "'crawl.allow_private_networks'",
        toml=_toml('[crawl]\nallow_private_networks = "yes please"'),
    ),
    Case("retry-negative", ADD, 2, "'store.retry_seconds'", toml=_toml("retry_seconds = -1")),
    Case("spool-not-string", ADD, 2, "'store.spool'", toml=_toml("spool = 5")),
    Case("read-timeout-zero", ADD, 2, "'store.read_timeout'", toml=_toml("read_timeout = 0")),
    Case(
        "dead-after-zero",
        ADD,
        2,
        "'verdicts.dead_after'",
        toml=GOOD + "[verdicts]\ndead_after = 0\n",
    ),
    Case(
        "unknown-event",
        ADD,
        2,
        "'notify.events.0'",
        toml=GOOD + '[notify]\nevents = ["bogus"]\n',
    ),
    Case(
        "rule-without-timing",
        ADD,
        2,
        "'schedule.rules.0'",
        toml=GOOD + '[[schedule.rules]]\nhost = "example.org"\n',
    ),
    Case(
        "rule-bad-cron",
        ADD,
        2,
        "cron '61 * * * *'",
        toml=GOOD + '[[schedule.rules]]\nhost = "example.org"\ncron = "61 * * * *"\n',
    ),
    Case(
        "tracking-params-not-list",
        ADD,
        2,
        "'urls.tracking_params'",
        toml=GOOD + '[urls]\ntracking_params = "utm"\n',
    ),
    Case("config-missing", ADD, 2, "{tmp}/missing.toml: config file not found", no_config=True),
    Case("config-not-utf8", ADD, 2, "{tmp}/c.toml", toml="\udcff"),
    Case("config-is-dir", ADD, 2, "{tmp}", no_config=True),
    Case(
        "citation-list-missing",
        ("run-once", "--all"),
        2,
        "{tmp}/cites.toml: citation list not found",
        toml=GOOD + '[sources]\nlists = ["cites.toml"]\n',
    ),
    # Store URLs
    Case("store-ftp", ADD, 2, "'ftp://host/x'", toml=_toml("", 'url = "ftp://host/x"')),
    Case(
        "store-http",
        ADD,
        2,
        "'http://example.org/store'",
        toml=_toml("", 'url = "http://example.org/store"'),
    ),
    Case("store-s3-no-bucket", ADD, 2, "'s3://'", toml=_toml("", 'url = "s3://"')),
    Case(
        "store-s3-no-bucket-prefix",
        ADD,
        2,
        "'s3:///archive'",
        toml=_toml("", 'url = "s3:///archive"'),
    ),
    Case("store-s3-bad-bucket", ADD, 2, "'a'", toml=_toml("", 'url = "s3://a"')),
    Case("store-s3-query", ADD, 2, "'s3://bucket?x=1'", toml=_toml("", 'url = "s3://bucket?x=1"')),
    Case(
        "store-s3-credentials-in-url",
        ADD,
        2,
        "s3://***@bucket/x",
        toml=_toml("", 'url = "s3://AKIAX:hunter2secret@bucket/x"'),
    ),
    Case(
        "store-file-host",
        ADD,
        2,
        "'file://otherhost/x'",
        toml=_toml("", 'url = "file://otherhost/x"'),
    ),
    # Store and index state
    Case("store-path-is-file", ADD, 4, "{tmp}/store", setup="store_is_file"),
    Case(
        "store-parent-is-file",
        ADD,
        4,
        "{tmp}/afile",
        setup="store_parent_is_file",
        toml=_toml("", 'url = "file://{tmp}/afile/store"'),
    ),
    Case(
        "store-in-proc",
        ADD,
        4,
        "/proc/citearchive-store",
        toml=_toml("", 'url = "file:///proc/citearchive-store"'),
    ),
    Case(
        "s3-no-credentials",
        ADD,
        4,
        "no AWS credentials",
        setup="s3_no_credentials",
        toml=_toml("", 'url = "s3://{bucket}/arch"'),
    ),
    Case(
        "s3-no-such-bucket",
        ADD,
        4,
        "'citearchive-missing-bucket'",
        setup="s3",
        toml=_toml("", 'url = "s3://citearchive-missing-bucket/arch"'),
    ),
    Case("corrupt-index-status", ("status",), 4, "{tmp}/store/index.sqlite", setup="corrupt_index"),
    Case("corrupt-index-add", ADD, 4, "{tmp}/store/index.sqlite", setup="corrupt_index"),
    Case("corrupt-index-history", ("history", URL), 4, "index.sqlite", setup="corrupt_index"),
    Case("corrupt-manifest-reindex", ("reindex",), 4, "captures/", setup="corrupt_manifest"),
    Case("corrupt-source-reindex", ("reindex",), 4, "sources/", setup="corrupt_source"),
    Case("corrupt-blob-get", ("get", URL), 4, "is corrupt", setup="corrupt_blob"),
    # Things that do not exist
    Case(
        "unknown-source",
        ("history", "https://never.example/"),
        3,
        "https://never.example/",
        setup="populated",
    ),
    Case(
        "unknown-capture-id",
        ("diff", URL, "--from", "deadbeefdead"),
        3,
        "deadbeefdead",
        setup="populated",
    ),
    Case("nothing-before-at", ("get", URL, "--at", "2000-01-01"), 3, URL, setup="populated"),
    # Arguments
    Case("at-not-a-time", ("get", URL, "--at", "yesterday"), 2, "'yesterday'", setup="populated"),
    Case("at-empty", ("get", URL, "--at", ""), 2, "--at", setup="populated"),
    Case("at-bad-date", ("get", URL, "--at", "2021-13-45"), 2, "'2021-13-45'", setup="populated"),
    Case("bad-artifact", ("get", URL, "--artifact", "bogus"), 2, "'bogus'"),
    Case("unknown-command", ("frobnicate",), 2, "'frobnicate'"),
    Case("unknown-option", ("status", "--frob"), 2, "--frob"),
    Case("limit-zero", ("run-once", "--limit", "0"), 2, "--limit"),
    Case("missing-argument", ("history",), 2, "'URL'"),
    Case("export-needs-target", ("export",), 2, "--wacz"),
]


def _populate(tmp: Path) -> None:
    """One source with one capture, stored without a browser."""
    app = App.open(load_config(tmp / "c.toml"))
    try:
        [record] = register(app.archive, app.index, [Citation(URL)])
        item = CaptureItem(
            source_id=record["id"],
            url=URL,
            captured_at="2026-01-02T10:00:00.000000Z",
            final_url=URL,
            http_status=200,
            media_type="text/html",
            dom=html("Alert", "<article><p>The alert text, first version.</p></article>"),
        )
        store_capture(app.archive, app.index, item)
    finally:
        app.close()


def _first(tmp: Path, pattern: str) -> Path:
    return next(iter(sorted((tmp / "store").glob(pattern))))


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _corrupt_index(tmp: Path, _: pytest.FixtureRequest) -> None:
    _populate(tmp)
    (tmp / "store" / "index.sqlite").write_bytes(b"\x00garbage, not SQLite\xff" * 200)


def _corrupt_manifest(tmp: Path, _: pytest.FixtureRequest) -> None:
    _populate(tmp)
    _first(tmp, "captures/*/*.json").write_text('{"id": "truncated manifest')


def _corrupt_source(tmp: Path, _: pytest.FixtureRequest) -> None:
    _populate(tmp)
    _first(tmp, "sources/*.json").write_bytes(b"\xff\xfe not json")


def _corrupt_blob(tmp: Path, _: pytest.FixtureRequest) -> None:
    _populate(tmp)
    record = json.loads(_first(tmp, "captures/*/*.json").read_text())
    sha = record["artifacts"]["dom"]["sha256"]
    (tmp / "store" / "blobs" / "sha256" / sha[:2] / sha[2:4] / sha).write_bytes(b"tampered")


def _s3(tmp: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    bucket = request.getfixturevalue("s3_bucket")
    return {"bucket": bucket}


def _s3_no_credentials(tmp: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    found = _s3(tmp, request)
    monkeypatch = request.getfixturevalue("monkeypatch")
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    # No instance metadata lookup: it would leave loopback.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return found


SETUPS: dict[str, Callable[[Path, pytest.FixtureRequest], dict[str, str] | None]] = {
    "populated": lambda tmp, _: _populate(tmp),
    "store_is_file": lambda tmp, _: _write(tmp / "store", "not a folder"),
    "store_parent_is_file": lambda tmp, _: _write(tmp / "afile", "not a folder"),
    "corrupt_index": _corrupt_index,
    "corrupt_manifest": _corrupt_manifest,
    "corrupt_source": _corrupt_source,
    "corrupt_blob": _corrupt_blob,
    "s3": _s3,
    "s3_no_credentials": _s3_no_credentials,
}


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root (but the config) with the sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "c.toml"
    }


def prepare(case: Case, tmp: Path, request: pytest.FixtureRequest) -> list[str]:
    """Write the config, set up the store; returns the full argv."""
    subst = {"tmp": str(tmp)}
    config = tmp / "c.toml"
    config.write_text(GOOD.replace("{tmp}", str(tmp)))
    if case.setup:
        subst.update(SETUPS[case.setup](tmp, request) or {})
    text = case.toml
    for key, value in subst.items():
        text = text.replace("{" + key + "}", value)
    if case.id == "config-not-utf8":
        config.write_bytes(b'[store]\nurl = "\xff"\n')
    else:
        config.write_text(text)
    if case.setup.startswith("s3"):
        # An installation that worked before: its index exists (status needs no store).
        assert main(["--config", str(config), "status"]) == 0
    if case.id == "config-missing":
        return ["--config", str(tmp / "missing.toml"), *case.argv]
    if case.id == "config-is-dir":
        return ["--config", str(tmp), *case.argv]
    return ["--config", str(config), *case.argv]


def test_the_table_is_big_enough():
    assert len(CASES) >= 50
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, request: pytest.FixtureRequest, capsys) -> None:
    argv = prepare(case, tmp_path, request)
    before = tree_digest(tmp_path)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1, err
    [line] = lines
    assert line.startswith("citearchive: error: "), line
    assert "Traceback" not in err
    assert case.needle.replace("{tmp}", str(tmp_path)) in line, line
    assert code == case.code, line
    assert tree_digest(tmp_path) == before, "the failed command changed the store or index"
    for secret in (s3server.SECRET_ACCESS_KEY, "hunter2secret"):
        assert secret not in err and secret not in out


def test_debug_adds_the_traceback(tmp_path, capsys, monkeypatch):
    """An unexpected error: one line without --debug, the traceback with it; exit 1."""

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("index row without a source")

    config = tmp_path / "c.toml"
    config.write_text(GOOD.replace("{tmp}", str(tmp_path)))
    monkeypatch.setattr(cli_module, "status_records", broken)
    monkeypatch.setattr(cli_module, "status_table", broken)
    assert main(["--config", str(config), "status"]) == 1
    err = capsys.readouterr().err
    assert err == "citearchive: error: unexpected RuntimeError: index row without a source\n"
    assert main(["--debug", "--config", str(config), "status"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "def broken" not in err
    assert err.splitlines()[-1] == (
        "citearchive: error: unexpected RuntimeError: index row without a source"
    )


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("add", "ftp://example.org/f"), 2, "'ftp://example.org/f'"),
        (("history", "https://never.example/"), 3, "https://never.example/"),
        (("get", "x", "--at", "yesterday"), 2, "'yesterday'"),
    ],
)
def test_the_real_command_prints_one_line(tmp_path, args, code, needle):
    config = tmp_path / "c.toml"
    config.write_text(GOOD.replace("{tmp}", str(tmp_path)))
    res = run_cli(config, *args)
    assert res.code == code
    assert res.err.count("\n") == 1 and res.err.startswith("citearchive: error: ")
    assert needle in res.err


def test_corrupt_index_file_is_named_without_sqlite_internals(tmp_path, request, capsys):
    """A garbage index names the file and says what to do; it is not a traceback."""
    (tmp_path / "c.toml").write_text(GOOD.replace("{tmp}", str(tmp_path)))
    _corrupt_index(tmp_path, request)
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(tmp_path / "store" / "index.sqlite").execute("select 1 from sources")
    assert main(["--config", str(tmp_path / "c.toml"), "status"]) == 4
    assert "index.sqlite" in capsys.readouterr().err
