"""Memento (RFC 7089) endpoints of the web UI, over captures stored without a browser."""

from __future__ import annotations

import re

import pytest
from fixture_site import html, make_png

from crawler.archiving import store_capture
from crawler.config import parse_config
from crawler.items import CaptureItem
from crawler.sources import Citation, register
from crawler.web import create_app
from storage.archive import Archive
from storage.index import Index
from storage.objectstore import open_store

URL = "https://example.org/news/story?id=7"
OTHER = "https://example.org/never-captured"
# Three captures; the second one with fractional seconds (a memento URL names the second).
TIMES = ["2021-08-26T12:00:00Z", "2021-09-01T08:30:15.250000Z", "2022-01-10T23:59:59Z"]
HTTP_DATES = [
    "Thu, 26 Aug 2021 12:00:00 GMT",
    "Wed, 01 Sep 2021 08:30:15 GMT",
    "Mon, 10 Jan 2022 23:59:59 GMT",
]
KEYS = ["20210826120000", "20210901083015", "20220110235959"]
RFC1123 = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")


def _item(source_id: str, when: str, words: str) -> CaptureItem:
    page = html("Story", f"<article><h1>Story</h1><p>{words}</p></article>")
    return CaptureItem(
        source_id=source_id,
        url=URL,
        captured_at=when,
        final_url=URL,
        http_status=200,
        headers=[("Content-Type", "text/html; charset=utf-8")],
        media_type="text/html",
        raw=page,
        dom=page,
        screenshot=make_png(),
    )


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("memento")
    config = parse_config({"store": {"url": f"file://{tmp}/store"}}, base_dir=tmp, origin="t")
    archive, index = Archive(open_store(config.store_url)), Index(config.index_url)
    [source] = register(archive, index, [Citation(URL, "article.md")], config.canonical)
    register(archive, index, [Citation(OTHER, "article.md")], config.canonical)
    for n, when in enumerate(TIMES):
        store_capture(archive, index, _item(source["id"], when, f"Version {n} of the story."))
    rows = index.captures(source["id"])
    index.close()
    app = create_app(config)
    yield app.test_client(), source, rows
    app.extensions["citearchive"].close()


def _links(header: str) -> list[tuple[str, dict[str, str]]]:
    """Parse a Link header / link-format body into (target, params)."""
    out = []
    for target, params in re.findall(r"<([^>]*)>((?:\s*;\s*[a-z]+=\"[^\"]*\")*)", header):
        out.append((target, dict(re.findall(r'([a-z]+)="([^"]*)"', params))))
    return out


def _rel(links, rel):
    return [(t, p) for t, p in links if p.get("rel") == rel]


def test_timegate_without_accept_datetime_redirects_to_the_latest(client):
    c, _, _ = client
    res = c.get(f"/timegate/{URL}")
    assert res.status_code == 302
    assert res.headers["Location"] == f"http://localhost/memento/{KEYS[2]}/{URL}"
    assert res.headers["Vary"].lower() == "accept-datetime"
    links = _links(res.headers["Link"])
    assert _rel(links, "original") == [(URL, {"rel": "original"})]
    [(timemap, params)] = _rel(links, "timemap")
    assert timemap == f"http://localhost/timemap/link/{URL}"
    assert params["type"] == "application/link-format"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("Sun, 01 Jan 2006 00:00:00 GMT", 0),  # before the first: the first
        (HTTP_DATES[0], 0),  # exactly at a capture
        ("Thu, 26 Aug 2021 11:59:59 GMT", 0),  # one second before the first: still the first
        ("Wed, 01 Sep 2021 08:30:14 GMT", 0),  # one second before the second
        (HTTP_DATES[1], 1),  # exactly at the second (its fraction of a second ignored)
        ("Mon, 10 Jan 2022 23:59:58 GMT", 1),
        (HTTP_DATES[2], 2),
        ("Fri, 01 Jan 2100 00:00:00 GMT", 2),  # after the last: the last
    ],
)
def test_timegate_negotiates_the_last_memento_at_or_before(client, accept, expected):
    c, _, _ = client
    res = c.get(f"/timegate/{URL}", headers={"Accept-Datetime": accept})
    assert res.status_code == 302, res.data
    assert res.headers["Location"].endswith(f"/memento/{KEYS[expected]}/{URL}")
    assert res.headers["Vary"].lower() == "accept-datetime"


@pytest.mark.parametrize(
    "bad", ["yesterday", "2021-08-26T12:00:00Z", "Thu, 26 Aug 2021 12:00:00 +0000", ""]
)
def test_timegate_refuses_an_unparseable_accept_datetime(client, bad):
    c, _, _ = client
    res = c.get(f"/timegate/{URL}", headers={"Accept-Datetime": bad})
    assert res.status_code == 400


def test_unknown_urls_are_404(client):
    c, _, _ = client
    assert c.get("/timegate/https://nowhere.example/").status_code == 404
    assert c.get("/timemap/link/https://nowhere.example/").status_code == 404
    assert c.get(f"/memento/{KEYS[0]}/https://nowhere.example/").status_code == 404
    # registered but never captured: no memento to negotiate
    assert c.get(f"/timegate/{OTHER}").status_code == 404
    assert c.get(f"/memento/2021/{URL}").status_code == 404


def test_timemap_lists_original_self_timegate_and_every_memento(client):
    c, _, _ = client
    res = c.get(f"/timemap/link/{URL}")
    assert res.status_code == 200
    assert res.mimetype == "application/link-format"
    links = _links(res.get_data(as_text=True))
    assert links[0] == (URL, {"rel": "original"})
    [(me, params)] = _rel(links, "self")
    assert me == f"http://localhost/timemap/link/{URL}"
    assert params == {
        "rel": "self",
        "type": "application/link-format",
        "from": HTTP_DATES[0],
        "until": HTTP_DATES[2],
    }
    assert _rel(links, "timegate") == [(f"http://localhost/timegate/{URL}", {"rel": "timegate"})]
    found = [(t, p) for t, p in links if "memento" in p["rel"].split()]
    assert [p["rel"] for _, p in found] == ["first memento", "memento", "last memento"]
    assert [t for t, _ in found] == [f"http://localhost/memento/{k}/{URL}" for k in KEYS]
    assert [p["datetime"] for _, p in found] == HTTP_DATES
    # each entry separated by ",\n" as in RFC 7089 section 5.1.1's example
    assert res.get_data(as_text=True).count(",\n") == 5


def test_memento_serves_the_preserved_page_with_its_headers(client):
    c, _, _ = client
    res = c.get(f"/memento/{KEYS[1]}/{URL}")
    assert res.status_code == 200
    assert b"Version 1 of the story." in res.data
    assert res.headers["Memento-Datetime"] == HTTP_DATES[1]
    assert RFC1123.fullmatch(res.headers["Memento-Datetime"])
    links = _links(res.headers["Link"])
    assert {p["rel"] for _, p in links} == {"original", "timegate", "timemap"}
    assert _rel(links, "original")[0][0] == URL
    assert _rel(links, "timegate")[0][0] == f"http://localhost/timegate/{URL}"
    assert _rel(links, "timemap")[0][1]["type"] == "application/link-format"
    csp = res.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox") and "default-src 'none'" in csp
    assert "script-src" not in csp
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Location" not in res.headers


def test_memento_between_captures_serves_the_earlier_one(client):
    c, _, _ = client
    res = c.get(f"/memento/20211231000000/{URL}")
    assert res.status_code == 200 and b"Version 1 of the story." in res.data
    assert res.headers["Memento-Datetime"] == HTTP_DATES[1]
    assert res.headers["Content-Location"] == f"http://localhost/memento/{KEYS[1]}/{URL}"
    early = c.get(f"/memento/19990101000000/{URL}")
    assert early.status_code == 200 and b"Version 0 of the story." in early.data


def test_memento_datetime_format_matches_rfc_7231():
    from datetime import UTC, datetime

    from crawler.web.memento import http_date, parse_http_date

    when = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)
    assert http_date(when) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == when
