"""Every verdict on the changing-web fixture, captured with real Chromium: zero false alarms."""

from __future__ import annotations

import json

import pytest
from changing_site import ChangingSite
from cliutil import history, run_cli, write_config

pytestmark = pytest.mark.browser

# path -> the verdict of the capture in epochs 0, 1, 2, 3
EXPECTED = {
    "/noise": ["new", "unchanged", "unchanged", "unchanged"],
    "/word": ["new", "changed", "unchanged", "unchanged"],
    "/number": ["new", "changed", "unchanged", "unchanged"],
    "/correction": ["new", "changed", "unchanged", "unchanged"],
    "/xhr": ["new", "changed", "unchanged", "unchanged"],
    "/deleted": ["new", "gone", "restored", "unchanged"],
    "/soft": ["new", "gone", "restored", "unchanged"],
    "/to-home": ["new", "gone", "restored", "unchanged"],
    "/moved": ["new", "moved", "unchanged", "unchanged"],
    "/flaky": ["new", "unreachable", "unchanged", "unchanged"],
    "/slow": ["new", "unreachable", "unchanged", "unchanged"],
    "/loop": ["new", "unreachable", "unchanged", "unchanged"],
    "/latin1": ["new", "unchanged", "changed", "unchanged"],
    "/doc.pdf": ["new", "changed", "unchanged", "unchanged"],
    "/ab": ["new", "changed", "unchanged", "unchanged"],
    "/passage": ["new", "changed", "unchanged", "unchanged"],
}


@pytest.fixture(scope="module")
def epochs(tmp_path_factory):
    """Capture every page in four epochs; yields (site, config)."""
    tmp = tmp_path_factory.mktemp("verdicts")
    site = ChangingSite()
    config = write_config(tmp / "c.toml", f"file://{tmp / 'store'}", page_timeout=6)
    citing = tmp / "citing.txt"
    citing.write_text(
        "The embassy warned that \u201cUS citizens who are at the Abbey Gate "
        f"should leave immediately.\u201d (source: {site.url('/passage')})\n"
    )
    assert run_cli(config, "import", str(citing)).code == 0
    assert run_cli(config, "add", *[site.url(p) for p in EXPECTED if p != "/passage"]).code == 0
    for epoch in range(4):
        site.epoch = epoch
        res = run_cli(config, "run-once", "--all")
        assert res.code == 0, res.err[-2000:]
    yield site, config
    site.stop()


@pytest.mark.parametrize("path", list(EXPECTED))
def test_every_verdict_is_right(epochs, path):
    site, config = epochs
    caps = history(config, site.url(path))
    got = [c["verdict"] for c in caps]
    assert got == EXPECTED[path], [(c["verdict"], c["reason"]) for c in caps]


@pytest.mark.parametrize(
    ("path", "epoch", "words"),
    [
        ("/deleted", 1, "HTTP 404"),
        ("/soft", 1, "soft 404"),
        ("/to-home", 1, "redirected to the home page"),
        ("/moved", 1, "permanently redirected to"),
        ("/flaky", 1, "HTTP 503"),
        ("/loop", 1, "ERR_TOO_MANY_REDIRECTS"),
        ("/word", 1, "1 sentence edited"),
        ("/passage", 1, "cited passage no longer present"),
        ("/ab", 2, "alternating"),
        ("/deleted", 2, "available again"),
    ],
)
def test_reasons_name_the_kind(epochs, path, epoch, words):
    site, config = epochs
    reason = history(config, site.url(path))[epoch]["reason"]
    assert words in reason, reason


def test_dead_after_three_misses_and_status_shows_state(tmp_path):
    site = ChangingSite()
    try:
        config = write_config(tmp_path / "c.toml", f"file://{tmp_path / 'store'}")
        url = site.url("/flaky")
        assert run_cli(config, "add", url).code == 0
        site.epoch = 1
        states = []
        for _ in range(3):
            assert run_cli(config, "run-once", "--all").code == 0
            [record] = json.loads(run_cli(config, "status", "--json").out)
            states.append(record["state"])
        assert states == ["unreachable", "unreachable", "dead"]
        site.epoch = 0
        assert run_cli(config, "run-once", "--all").code == 0
        assert [c["verdict"] for c in history(config, url)][-1] == "new"
    finally:
        site.stop()
