"""`citearchive report`: the citation health of an imported document, and Robust Links."""

from __future__ import annotations

import json
import re

import pytest
from cliutil import run_cli, write_config
from fixture_site import html

from crawler.app import App
from crawler.archiving import store_capture
from crawler.config import load_config
from crawler.importer import document_id, import_document
from crawler.items import CaptureItem
from crawler.readers import parse_document
from storage.ids import source_id

A = "https://example.org/alert?utm_source=feed"  # as cited; canonical drops utm_source
A_CANON = "https://example.org/alert"
B = "https://example.org/bridge"
C = "https://example.org/convoy"
D = "https://example.org/never"
NAV = "https://example.org/home"

ARTICLE = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Report test</title>
<script>var x = "<a href='https://example.org/in-script'>";</script></head>
<body><nav><a class=menu href="{NAV}">Home</a></nav>
<article><h1>Kabul</h1>
<p>The embassy warned that \u201cUS citizens at the Abbey Gate should leave immediately\u201d in
<a href="{A.replace("&", "&amp;")}">an alert</a>.</p>
<p>The ministry said \u201cthe bridge will stay closed until further notice\u201d
(<A HREF='{B}' title=x>statement</A>).</p>
<p>A <a href="{C}">report</a> says \u201cthe convoy left the city before dawn on Tuesday\u201d.</p>
<p>Caf\u00e9 owners wrote &lt;script&gt;alert(1)&lt;/script&gt; on <a href="{D}">a page</a>.</p>
</article></body></html>
"""

T = {
    "a1": "2026-01-02T10:00:00.000000Z",
    "a2": "2099-01-01T00:00:00.000000Z",  # after the import
    "b1": "2026-01-02T10:00:00.000000Z",
    "b2": "2026-02-03T04:05:06.700000Z",
    "c1": "2026-01-02T10:00:00.000000Z",
    "c2": "2026-03-01T00:00:00.000000Z",
}


def _page(text: str) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in text.split("\n"))
    return html("Page", f"<article><h1>Page</h1>{body}</article>")


FILLER = "This page has several sentences of ordinary prose so the extractor keeps it."


@pytest.fixture
def world(tmp_path):
    config = write_config(tmp_path / "c.toml", f"file://{tmp_path / 'store'}")
    doc = tmp_path / "article.html"
    doc.write_bytes(ARTICLE.encode("utf-8"))
    ref = str(doc.resolve())
    app = App.open(load_config(str(config)))
    try:
        parsed = parse_document(doc.read_bytes(), str(doc))
        import_document(app.archive, app.index, parsed, ref, app.canonical)

        def capture(url, when, status, text):
            item = CaptureItem(
                source_id=source_id(url),
                url=url,
                captured_at=when,
                final_url=url,
                http_status=status,
                media_type="text/html",
                dom=_page(text),
            )
            return store_capture(app.archive, app.index, item).manifest["id"]

        ids = {
            "a1": capture(
                A_CANON, T["a1"], 200,
                f"US citizens at the Abbey Gate should leave immediately.\n{FILLER}",
            ),
            "a2": capture(
                A_CANON, T["a2"], 200,
                f"US citizens at the Abbey Gate should leave immediately.\n{FILLER}",
            ),
            "b1": capture(
                B, T["b1"], 200, f"The bridge will stay closed until further notice.\n{FILLER}"
            ),
            "b2": capture(
                B, T["b2"], 200, f"The bridge reopened on Monday for all traffic.\n{FILLER}"
            ),
            "c1": capture(
                C, T["c1"], 200, f"The convoy left the city before dawn on Tuesday.\n{FILLER}"
            ),
            "c2": capture(C, T["c2"], 404, "Not found"),
        }  # fmt: skip
        imported_at = app.archive.get_document(document_id(ref))["imported_at"]
    finally:
        app.close()
    return {"config": config, "doc": doc, "ref": ref, "ids": ids, "imported_at": imported_at}


def _report(world, *args):
    res = run_cli(world["config"], "report", str(world["doc"]), *args)
    assert res.code == 0, res.err
    return res


def test_json_report_fields(world):
    ids = world["ids"]
    report = json.loads(_report(world, "--format", "json").out)
    assert report["document"] == world["ref"]
    assert report["kind"] == "html"
    assert report["imported_at"] == world["imported_at"]
    assert report["ui_url"] is None
    assert report["summary"] == "4 citations: 1 live, 1 changed, 1 gone, 1 not captured; " + (
        "2 cited passages missing"
    )
    assert report["counts"] == {
        "live": 1, "changed": 1, "gone": 1, "unreachable": 0, "dead": 0, "not captured": 1,
    }  # fmt: skip
    a, b, c, d = report["citations"]
    assert [x["number"] for x in (a, b, c, d)] == [1, 2, 3, 4]

    # A: live, cited before the second capture, passage present.
    assert a["url"] == A and a["canonical_url"] == A_CANON
    assert a["source_id"] == source_id(A_CANON)
    assert a["location"] == "css: article > p:nth-of-type(1) > a:nth-of-type(1)"
    assert a["anchor"] == "an alert"
    assert "Abbey Gate should leave immediately" in a["passage"]
    assert (a["state"], a["health"], a["verdict"]) == ("live", "live", "unchanged")
    assert a["reason"] and a["captures"] == 2
    assert a["latest_capture"]["id"] == ids["a2"]
    assert a["latest_capture"]["captured_at"] == T["a2"]
    assert a["latest_capture"]["http_status"] == 200
    assert a["last_change"] is None
    assert a["passage_status"] == "present"
    assert a["version"]["capture_id"] == ids["a1"]  # the latest at or before the import
    assert a["version"]["role"] == "cited version"
    assert a["version"]["command"] == f"citearchive get '{A_CANON}' --at {T['a1']}"
    assert a["version"]["version_url"] == f"citearchive:capture/{ids['a1']}"
    assert a["version"]["capture_url"] is None and a["version"]["memento_url"] is None
    assert [x["role"] for x in a["copies"]] == ["cited version", "latest"]
    assert a["copies"][1]["capture_id"] == ids["a2"]

    # B: changed, its passage gone from the page.
    assert b["url"] == B and b["anchor"] == "statement"
    assert b["location"] == "css: article > p:nth-of-type(2) > a:nth-of-type(1)"
    assert (b["state"], b["health"], b["verdict"]) == ("live", "changed", "changed")
    assert b["reason"].startswith("cited passage no longer present")
    assert b["last_change"] == {
        "verdict": "changed", "captured_at": T["b2"], "capture_id": ids["b2"],
        "reason": b["reason"],
    }  # fmt: skip
    assert b["passage_status"] == "missing"
    assert b["version"]["capture_id"] == ids["b2"]
    assert len(b["copies"]) == 1

    # C: gone (404); the version is the last capture with content.
    assert (c["state"], c["health"], c["verdict"]) == ("gone", "gone", "gone")
    assert c["reason"] == "HTTP 404"
    assert c["latest_capture"]["http_status"] == 404
    assert c["last_change"]["verdict"] == "gone"
    assert c["last_change"]["captured_at"] == T["c2"]
    assert c["last_change"]["capture_id"] == ids["c2"]
    assert c["passage_status"] == "missing"
    assert c["version"]["capture_id"] == ids["c1"]
    assert [x["capture_id"] for x in c["copies"]] == [ids["c1"], ids["c2"]]

    # D: never captured.
    assert d["url"] == D and d["anchor"] == "a page"
    assert "<script>alert(1)</script>" in d["passage"]
    assert (d["state"], d["health"], d["verdict"], d["reason"]) == (
        "pending", "not captured", None, None,
    )  # fmt: skip
    assert d["latest_capture"] is None and d["last_change"] is None
    assert d["passage_status"] == "not checked"
    assert d["version"] is None and d["copies"] == [] and d["captures"] == 0


def test_ui_url_links(world):
    ids = world["ids"]
    report = json.loads(_report(world, "--format", "json", "--ui-url", "http://ui.test/").out)
    assert report["ui_url"] == "http://ui.test"
    version = report["citations"][0]["version"]
    assert version["capture_url"] == f"http://ui.test/captures/{ids['a1']}"
    assert version["memento_url"] == f"http://ui.test/memento/20260102100000/{A_CANON}"
    assert version["version_url"] == version["memento_url"]


def test_ui_url_from_config(world, tmp_path):
    config = world["config"]
    config.write_text(config.read_text() + '\n[notify]\nui_url = "https://ui.example/base"\n')
    report = json.loads(_report(world, "--format", "json").out)
    assert report["citations"][1]["version"]["capture_url"] == (
        f"https://ui.example/base/captures/{world['ids']['b2']}"
    )


def test_markdown_has_summary_table_and_details(world):
    out = _report(world).out
    assert out.splitlines()[2] == (
        "**4 citations: 1 live, 1 changed, 1 gone, 1 not captured; 2 cited passages missing**"
    )
    rows = [line for line in out.splitlines() if re.match(r"\| \d ", line)]
    assert len(rows) == 4
    assert rows[1].startswith(f"| 2 | {B} | changed | changed | changed {T['b2']} | missing |")
    assert rows[3].startswith(f"| 4 | {D} | not captured |")
    assert f"`citearchive get '{A_CANON}' --at {T['a1']}`" in out
    assert "\\<script\\>" in out  # escaped in Markdown too


def test_html_is_self_contained_and_escaped(world, tmp_path):
    out = tmp_path / "r.html"
    _report(world, "--format", "html", "-o", str(out), "--ui-url", "http://ui.test")
    page = out.read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "default-src 'none'; style-src 'unsafe-inline'" in page
    assert page.count("<tr><td>") == 4
    for url in (A, B, C, D):
        assert url.replace("&", "&amp;") in page
    assert f"http://ui.test/captures/{world['ids']['a1']}" in page
    assert "4 citations: 1 live, 1 changed, 1 gone, 1 not captured" in page


def test_robust_links(world, tmp_path):
    ids = world["ids"]
    out = tmp_path / "linked.html"
    _report(world, "--robust-links", str(out), "-o", str(tmp_path / "r.md"))
    data = out.read_bytes()
    original = world["doc"].read_bytes()
    attrs = {
        A: (A, f"citearchive:capture/{ids['a1']}", "2026-01-02"),
        B: (B, f"citearchive:capture/{ids['b2']}", "2026-02-03"),
        C: (C, f"citearchive:capture/{ids['c1']}", "2026-01-02"),
    }
    text = data.decode("utf-8")
    for url, (orig, version, date) in attrs.items():
        added = (
            f' data-originalurl="{orig.replace("&", "&amp;")}" data-versionurl="{version}" '
            f'data-versiondate="{date}"'
        )
        assert added in text, url
        text = text.replace(added, "", 1)
    d_added = f' data-originalurl="{D}"'
    assert d_added in text  # never captured: no version to point to
    text = text.replace(d_added, "", 1)
    # Everything else, the nav link and the script included, kept byte for byte.
    assert text.encode("utf-8") == original
    assert f'<a class=menu href="{NAV}">Home</a>'.encode() in data


def test_robust_links_with_ui_url(world, tmp_path):
    out = tmp_path / "linked.html"
    _report(world, "--robust-links", str(out), "--ui-url", "http://ui.test")
    data = out.read_text()
    assert f'data-versionurl="http://ui.test/memento/20260203040506/{B}"' in data


def test_robust_links_needs_an_html_document(world, tmp_path):
    md = tmp_path / "notes.md"
    md.write_text(f"See [the alert]({B}).\n")
    assert run_cli(world["config"], "import", str(md)).code == 0
    res = run_cli(world["config"], "report", str(md), "--robust-links", str(tmp_path / "x.html"))
    assert res.code == 2
    assert len(res.err.strip().splitlines()) == 1 and "HTML" in res.err
    assert not (tmp_path / "x.html").exists()
    ok = run_cli(world["config"], "report", str(md), "--format", "json")
    assert ok.code == 0
    assert json.loads(ok.out)["summary"].startswith("1 citation: 0 live, 1 changed")


def test_not_imported_is_exit_3(world, tmp_path):
    res = run_cli(world["config"], "report", str(tmp_path / "other.html"))
    assert res.code == 3
    assert str(tmp_path / "other.html") in res.err


def test_citations_come_in_document_order(world, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text(f"First {B} here.\nThen {C} there.\nAnd {B} again.\n")
    assert run_cli(world["config"], "import", str(notes)).code == 0
    report = json.loads(_report_of(world, notes, "--format", "json").out)
    got = [(c["url"], c["location"]) for c in report["citations"]]
    assert got == [(B, "line 1"), (C, "line 2"), (B, "line 3")]
    assert report["summary"].startswith("3 citations: 0 live, 2 changed, 1 gone")


def _report_of(world, doc, *args):
    res = run_cli(world["config"], "report", str(doc), *args)
    assert res.code == 0, res.err
    return res


LATIN1 = (
    '<!DOCTYPE html>\n<html><head><meta charset="iso-8859-1"><title>T <a href="{u}">x</a>'
    "</title></head><body><nav><a href='{nav}'>Caf\xe9</a></nav><article>"
    "<p>Le caf\xe9 a <a href={u}/>r\xe9pondu</a>.</p>"
    '<textarea><a href="{u}/">not a link</a></textarea>'
    '<p>Et <a href="{u}/x?a=1&amp;b=2" >l\xe0</a>.</p></article></body></html>'
)


def _cited(data, name="doc.html"):
    parsed = parse_document(data, name)
    return [
        {"url": link.url, "location": link.location, "attributes": {"data-originalurl": link.url}}
        for link in parsed.links
    ]


def test_robust_links_keep_other_bytes_and_the_encoding():
    from crawler.report import robust_links

    data = LATIN1.format(u="https://e.org", nav=NAV).encode("iso-8859-1")
    cited = _cited(data)
    assert [c["url"] for c in cited] == ["https://e.org/", "https://e.org/x?a=1&b=2"]
    out = robust_links(data, cited)
    assert b'<a href=https://e.org/ data-originalurl="https://e.org/">r\xe9pondu' in out
    assert b'<a href="https://e.org/x?a=1&amp;b=2"  data-originalurl=' in out
    stripped = out.replace(b' data-originalurl="https://e.org/"', b"", 1).replace(
        b' data-originalurl="https://e.org/x?a=1&amp;b=2"', b"", 1
    )
    assert stripped == data  # the title, the textarea and the nav untouched, latin-1 kept


def test_robust_links_fall_back_to_lxml_when_tags_do_not_match(monkeypatch):
    import lxml.html

    from crawler import report

    monkeypatch.setattr(report, "_align", lambda elements, tags: None)
    data = ARTICLE.encode("utf-8")
    cited = _cited(data)
    out = report.robust_links(data, cited)
    tree = lxml.html.document_fromstring(out)
    marked = [a.get("data-originalurl") for a in tree.iter("a") if a.get("data-originalurl")]
    assert marked == [A, B, C, D]
    assert tree.xpath("//nav/a")[0].attrib == {"class": "menu", "href": NAV}
    assert out.startswith(b"<!DOCTYPE html>")


def test_article_imported_by_url(tmp_path):
    from crawler.sources import Citation, register

    config = write_config(tmp_path / "c.toml", f"file://{tmp_path / 'store'}")
    url = "https://news.example/story.html"  # without .html it reads as text (see report)
    dom = ARTICLE.replace(f'href="{A}"', 'href="/alert?utm_source=feed"').encode()
    app = App.open(load_config(str(config)))
    try:
        register(app.archive, app.index, [Citation(url)], app.canonical)
        item = CaptureItem(
            source_id=source_id(url), url=url, captured_at="2026-01-01T00:00:00.000000Z",
            final_url=url, http_status=200, media_type="text/html", dom=dom,
        )  # fmt: skip
        store_capture(app.archive, app.index, item)
        parsed = parse_document(f'<base href="{url}">'.encode() + dom, url)
        import_document(app.archive, app.index, parsed, url, app.canonical)
    finally:
        app.close()
    out = tmp_path / "linked.html"
    res = run_cli(config, "report", url, "--format", "json", "--robust-links", str(out))
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert report["document"] == url
    assert [c["url"] for c in report["citations"]] == [
        "https://news.example/alert?utm_source=feed", B, C, D,
    ]  # fmt: skip
    data = out.read_bytes()
    assert data.startswith(b"<!DOCTYPE html>")  # the DOM as captured, without the <base>
    assert b'href="/alert?utm_source=feed" data-originalurl="https://news.example/alert' in data


def test_version_capture_choice():
    from crawler.report import version_capture
    from storage.index import CaptureRow

    def row(n, when, verdict):
        return CaptureRow(
            id=f"c{n}", source_id="s", captured_at=when, verdict=verdict, reason=None,
            http_status=200, final_url=None, error=None, manifest_key="k",
            manifest_sha256="0" * 64, text_sha256=None, artifacts={},
        )  # fmt: skip

    rows = [
        row(1, "2026-01-01T00:00:00.000000Z", "unreachable"),
        row(2, "2026-02-01T00:00:00.000000Z", "new"),
        row(3, "2026-03-01T00:00:00.000000Z", "changed"),
        row(4, "2026-04-01T00:00:00.000000Z", "gone"),
        row(5, "2026-05-01T00:00:00.000000Z", "restored"),
    ]
    assert version_capture(rows, "2026-03-01T00:00:00.000000Z").id == "c3"  # at: included
    assert version_capture(rows, "2026-04-15T00:00:00.000000Z").id == "c3"  # gone skipped
    assert version_capture(rows, "2026-01-15T00:00:00.000000Z").id == "c2"  # first after
    assert version_capture(rows, None).id == "c2"
    assert version_capture(rows[:1], "2026-06-01T00:00:00.000000Z") is None
