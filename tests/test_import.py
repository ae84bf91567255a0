"""`citearchive import` end to end: documents in, sources with provenance out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cliutil import history, run_cli, write_config
from fixture_site import FixtureSite, html

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "samples" / "article-isis-k.txt"
SAMPLE_SOURCES = [
    "https://x.com/realalexrubi/status/1431733827714625541",
    "https://edition.cnn.com/videos/world/2021/08/28/isis-k-leader-intv-ward-afghanistan-kabul-attack-vpx.cnn",
    "https://pic.twitter.com/B37fHB67bh",
    "https://x.com/hadinasrallah/status/1431426013700009986",
]


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path / "c.toml", f"file://{tmp_path / 'store'}")


def sources(config, *args):
    res = run_cli(config, "sources", "--json", *args)
    assert res.code == 0, res.err
    return json.loads(res.out)


def test_sample_article_imports_exactly_its_citations(config, tmp_path):
    doc = tmp_path / "article.txt"
    doc.write_bytes(SAMPLE.read_bytes())
    res = run_cli(config, "import", str(doc))
    assert res.code == 0, res.err
    found = sources(config)
    assert [s["url"] for s in found] == SAMPLE_SOURCES
    for source in found:
        [citation] = source["citations"]
        assert citation["document"] == str(doc)
        assert citation["location"].startswith("line ")
        assert citation["passage"]
    rubi = found[0]["citations"][0]
    assert rubi["url"].endswith("?ref_src=twsrc%5Etfw")  # the original, as seen
    assert "controlled demolitions" in found[2]["citations"][0]["passage"]

    # Importing the same document again changes nothing.
    before = sorted(p.read_bytes() for p in (tmp_path / "store" / "sources").iterdir())
    res = run_cli(config, "import", str(doc))
    assert res.code == 0 and "unchanged since the last import" in res.out
    after = sorted(p.read_bytes() for p in (tmp_path / "store" / "sources").iterdir())
    assert after == before


def test_new_version_reports_added_and_dropped(config, tmp_path):
    doc = tmp_path / "notes.md"
    doc.write_text("See [the alert](https://example.org/alert) and <https://example.org/old>.\n")
    assert run_cli(config, "import", str(doc)).code == 0
    doc.write_text("See [the alert](https://example.org/alert) and https://example.org/new.\n")
    res = run_cli(config, "import", str(doc))
    assert res.code == 0, res.err
    assert "+ https://example.org/new" in res.out and "- https://example.org/old" in res.out
    cited = {s["url"] for s in sources(config, "--document", str(doc))}
    assert cited == {"https://example.org/alert", "https://example.org/new"}


def test_same_source_in_two_documents_is_one_source_with_two_citations(config, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("Cited: https://twitter.com/User/status/42?s=20 today.\n")
    b.write_text("Also cited: https://mobile.twitter.com/user/status/42.\n")
    assert run_cli(config, "import", str(a), str(b)).code == 0
    [source] = sources(config)
    assert source["url"] == "https://x.com/user/status/42"
    assert {c["document"] for c in source["citations"]} == {str(a), str(b)}


def test_bad_documents_register_nothing_and_others_go_on(config, tmp_path):
    empty, fake_pdf, good = tmp_path / "empty.txt", tmp_path / "x.pdf", tmp_path / "ok.txt"
    empty.write_text("")
    fake_pdf.write_bytes(b"\x00\x01binary" * 100)
    good.write_text("Source: https://example.org/fine\n")
    res = run_cli(config, "import", str(empty), str(fake_pdf), str(good))
    assert res.code == 2
    lines = res.err.strip().splitlines()
    assert len(lines) == 2
    assert str(empty) in lines[0] and str(fake_pdf) in lines[1]
    assert [s["url"] for s in sources(config)] == ["https://example.org/fine"]


def test_remove_by_url_and_by_document(config, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("https://example.org/1 and https://example.org/shared\n")
    b.write_text("https://example.org/shared\n")
    assert run_cli(config, "import", str(a), str(b)).code == 0
    assert run_cli(config, "remove", "--document", str(a)).code == 0
    # The shared source is still cited by b; /1 is unregistered.
    assert [s["url"] for s in sources(config)] == ["https://example.org/shared"]
    assert run_cli(config, "remove", "https://example.org/shared").code == 0
    assert sources(config) == []
    assert run_cli(config, "remove", "--document", str(a)).code == 3


@pytest.mark.browser
def test_import_then_capture_from_a_local_site(config, tmp_path):
    site = FixtureSite().start()
    try:
        site.pages["/news/story"] = (
            200,
            "text/html; charset=utf-8",
            html(
                "Article",
                "<nav><a href='/nav-target'>Home</a></nav><article><h1>Kabul</h1>"
                "<p>The embassy warned citizens, <a href='/static.html'>in an alert</a>, to leave."
                "</p><p>Data: <a href='/doc.pdf'>the PDF</a>.</p></article>"
                "<footer><a href='/footer-target'>About</a></footer>",
            ),
            {},
        )
        res = run_cli(config, "import", site.url("/news/story"))
        assert res.code == 0, res.err
        cited = sources(config, "--document", site.url("/news/story"))
        assert sorted(s["url"] for s in cited) == [site.url("/doc.pdf"), site.url("/static.html")]
        anchors = {s["url"]: s["citations"][0]["anchor"] for s in cited}
        assert anchors[site.url("/static.html")] == "in an alert"
        assert run_cli(config, "run-once").code == 0
        for url in (site.url("/static.html"), site.url("/doc.pdf")):
            assert [c["verdict"] for c in history(config, url)] == ["new"]
        # The article itself was rendered and kept as a source too.
        assert history(config, site.url("/news/story"))[0]["http_status"] == 200
        assert site.hits["/nav-target"] == 0
    finally:
        site.stop()


def test_fifty_megabyte_text_and_ten_thousand_links_complete(config, tmp_path):
    big = tmp_path / "big.txt"
    line = "The embassy said citizens should avoid the airport gates at this time.\n"
    with open(big, "w") as fh:
        for _ in range(50 * 2**20 // len(line)):
            fh.write(line)
        fh.write("Source: https://example.org/the-one-link\n")
    many = tmp_path / "many.md"
    many.write_text("".join(f"- [item {i}](https://example.org/p/{i})\n" for i in range(10_000)))
    res = run_cli(config, "import", "--json", str(big), str(many))
    assert res.code == 0, res.err[-500:]
    reports = json.loads(res.out)
    assert [len(r["added"]) for r in reports] == [1, 10_000]
    assert len(sources(config)) == 10_001


def test_tracking_parameter_list_is_configurable(tmp_path):
    config = write_config(
        tmp_path / "c.toml",
        f"file://{tmp_path / 'store'}",
        extra='\n[urls]\ntracking_params = ["campaign", "ref*"]\n',
    )
    doc = tmp_path / "d.txt"
    doc.write_text("See https://example.org/a?utm_source=x&campaign=y&refid=1&page=2 today.\n")
    assert run_cli(config, "import", str(doc)).code == 0
    [source] = sources(config)
    assert source["url"] == "https://example.org/a?utm_source=x&page=2"
    assert (
        run_cli(config, "history", "https://example.org/a?utm_source=x&campaign=z&page=2").code == 0
    )
