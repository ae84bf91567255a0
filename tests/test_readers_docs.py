"""Readers of HTML, PDF and DOCX documents: which links are citations, and bad input."""

from __future__ import annotations

import io

import pytest
from docfixtures import (
    NEWS_ARTICLE,
    footnote_ref,
    hyperlink,
    make_docx,
    make_link_pdf,
    many_links_html,
    run,
    zip_of,
)
from pypdf import PdfWriter

from crawler.readers import DocLink, UnreadableDocument, docx, parse_document


def where(links: list[DocLink]) -> list[tuple[str, str, str | None]]:
    return [(link.url, link.location, link.anchor) for link in links]


# --- HTML -------------------------------------------------------------------------------


def test_html_article_links_only_with_locations_and_anchors():
    doc = parse_document(NEWS_ARTICLE.encode(), "flood.html")
    assert doc.kind == "html"
    assert where(doc.links) == [
        (
            "https://water.example/gauges/42",
            "css: article > p:nth-of-type(1) > a:nth-of-type(1)",
            "gauge data",
        ),
        (  # relative, resolved against the canonical URL
            "https://news.example/2024/floods/map",
            "css: article > p:nth-of-type(2) > a:nth-of-type(1)",
            "three districts",
        ),
        (  # the tweet of the embed; not the t.co link inside the tweet text
            "https://twitter.com/metoffice/status/1234567890?ref_src=twsrc%5Etfw",
            "css: article > blockquote:nth-of-type(1) > a:nth-of-type(1)",
            "March 3, 2024",
        ),
        (
            "https://news.example/2024/floods/day1",
            "css: article > ul:nth-of-type(1) > li:nth-of-type(1) > a:nth-of-type(1)",
            "Day one",
        ),
    ]


def test_html_passages_are_the_sentence_of_the_link_or_the_quoted_tweet():
    gauge, districts, tweet, day_one = parse_document(NEWS_ARTICLE.encode(), "f.html").links
    assert "The gauge data shows the peak at dawn." in gauge.passage
    assert "Evacuations" not in gauge.passage  # another paragraph
    assert "Evacuations began in three districts" in districts.passage
    assert tweet.passage == "Water is at the bridge deck now. pic.twitter.com/abc123"
    assert "Earlier: Day one" in day_one.passage


def test_html_relative_links_need_a_base():
    body = '<p>See <a href="/report">the report</a> and <a href="//cdn.example/x">x</a>.</p>'
    without = parse_document(f"<html><body>{body}</body></html>".encode(), "a.html")
    assert [link.url for link in without.links] == ["https://cdn.example/x"]
    with_base = f'<html><head><base href="https://site.example/a/"></head><body>{body}</body>'
    assert [link.url for link in parse_document(with_base.encode(), "b.html").links] == [
        "https://site.example/report",
        "https://cdn.example/x",
    ]


def test_html_without_article_takes_the_densest_block():
    prose = "Water levels rose again this week across the valley. " * 4
    page = f"""<html><body>
      <div class="links"><p><a href="https://menu.example/1">One</a></p></div>
      <div id="story"><p>{prose}<a href="https://gauge.example/">gauges</a>.</p><p>{prose}</p>
      </div>
      <div class="widget"><p><a href="https://widget.example/">Top ten rivers</a></p></div>
    </body></html>"""
    links = parse_document(page.encode(), "story.html").links
    assert where(links) == [
        ("https://gauge.example/", "css: div#story > p:nth-of-type(1) > a:nth-of-type(1)", "gauges")
    ]


def test_html_page_wrapped_in_a_form_keeps_its_links():
    page = """<html><body><form id="aspnetForm"><form><input name="q"><a href="https://s.example/">
      Search help</a></form><div class="post"><p>Read <a href="https://a.example/">this</a>.</p>
      </div></form></body></html>"""
    assert [link.url for link in parse_document(page.encode(), "asp.html").links] == [
        "https://a.example/"
    ]


def test_html_ten_thousand_links():
    links = parse_document(many_links_html(10_000), "many.html").links
    assert len(links) == 10_000
    assert links[-1].url == "https://example.org/9999"
    assert links[-1].location == "css: article > p:nth-of-type(1) > a:nth-of-type(10000)"
    assert links[-1].anchor == "source 9999"
    assert links[-1].passage == "See source 9999."


# --- PDF --------------------------------------------------------------------------------

WRAPPED_URL_PDF = [
    "See the flood report at https://example.org/reports/2024/",
    "annual-summary.html for the figures.",
    [(72, "Its "), (96, "statement"), (150, " confirms the figures.")],
    "Background is in the ministry notes on page two.",
]


def test_pdf_wrapped_url_and_link_annotations():
    data = make_link_pdf(
        WRAPPED_URL_PDF,
        [
            ((94, 676, 152, 692), "https://agency.example/statement"),
            # inside a line pypdf reports whole: no anchor, but its sentence is found
            ((190, 656, 290, 672), "https://ministry.example/notes"),
        ],
    )
    doc = parse_document(data, "report.pdf")
    assert doc.kind == "pdf"
    assert where(doc.links) == [
        ("https://example.org/reports/2024/annual-summary.html", "page 1", None),
        ("https://agency.example/statement", "page 1", "statement"),
        ("https://ministry.example/notes", "page 1", None),
    ]
    wrapped, statement, ministry = doc.links
    assert "See the flood report at" in wrapped.passage
    assert "Its statement confirms the figures." in statement.passage
    assert "Background is in the ministry notes" in ministry.passage


def test_pdf_annotated_printed_url_is_one_citation():
    data = make_link_pdf(
        ["Source: https://example.net/data.csv (open data)."],
        [((120, 716, 300, 732), "https://example.net/data.csv")],
    )
    (link,) = parse_document(data, "data.pdf").links
    assert where([link]) == [  # the anchor is the printed URL under the annotation
        ("https://example.net/data.csv", "page 1", "https://example.net/data.csv")
    ]
    assert "Source:" in link.passage and "(open data)" in link.passage


# --- DOCX -------------------------------------------------------------------------------


def budget_docx() -> bytes:
    field = (
        '<w:r><w:fldChar w:fldCharType="begin"/></w:r>'
        '<w:r><w:instrText xml:space="preserve"> HYPERLINK "https://field.example/a" </w:instrText>'
        '</w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r>'
        + run("the field link")
        + '<w:r><w:fldChar w:fldCharType="end"/></w:r>'
    )
    return make_docx(
        [
            run("The council published ") + hyperlink("rId1", "its budget") + run(" on Monday."),
            "",  # an empty paragraph is not counted
            run("Raw data: https://data.example/budget.csv (updated weekly)."),
            run("See ") + hyperlink("rId2", "https://example.com/x") + run(" for more."),
            run("Also ") + field + run(" and ") + hyperlink("rId3", "a mail link") + run("."),
            run("The minister disagreed.") + footnote_ref(1),
        ],
        {"rId1": "https://council.example/budget", "rId2": "https://example.com/x",
         "rId3": "mailto:clerk@council.example"},
        footnotes=[run("Interview, ") + hyperlink("rId1", "BBC News") + run(", 3 May.")],
        footnote_links={"rId1": "https://bbc.example/news/1"},
    )  # fmt: skip


def test_docx_hyperlinks_typed_urls_fields_and_footnotes():
    doc = parse_document(budget_docx(), "budget.docx")
    assert doc.kind == "docx"
    assert where(doc.links) == [
        ("https://council.example/budget", "paragraph 1", "its budget"),
        ("https://data.example/budget.csv", "paragraph 2", None),
        ("https://example.com/x", "paragraph 3", "https://example.com/x"),  # typed and linked
        ("https://field.example/a", "paragraph 4", "the field link"),
        ("https://bbc.example/news/1", "footnote 1", "BBC News"),
    ]
    budget, data, _, field, note = doc.links
    assert "The council published its budget on Monday." in budget.passage
    assert "Raw data:" in data.passage and "(updated weekly)" in data.passage
    assert "Also the field link and a mail link." in field.passage
    assert "Interview, BBC News, 3 May." in note.passage


def test_docx_member_over_the_size_limit_is_refused(monkeypatch: pytest.MonkeyPatch):
    data = budget_docx()
    monkeypatch.setattr(docx, "MAX_MEMBER_BYTES", 1000)  # above every part but the body
    with pytest.raises(UnreadableDocument, match=r"^bomb\.docx: word/document\.xml is \d+ b"):
        parse_document(data, "bomb.docx")


# --- bad input --------------------------------------------------------------------------


def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


WRAPPED = make_link_pdf(WRAPPED_URL_PDF, [((94, 676, 152, 692), "https://agency.example/s")])


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.pdf", b"", "empty document"),
        ("x.pdf", bytes(range(256)) * 4, "not a valid PDF"),
        ("x.docx", zip_of({"readme.txt": b"not a word document"}), "without a document part"),
        ("garbage.docx", b"\x13\x37 definitely not a zip \x00\xff" * 20, "not a valid DOCX"),
        ("truncated.pdf", WRAPPED[: len(WRAPPED) // 2], "truncated PDF"),
        ("truncated.docx", budget_docx()[:900], "not a valid DOCX"),
        ("locked.pdf", encrypted_pdf(), "encrypted PDF"),
    ],
)
def test_unreadable_documents_name_the_file_in_one_line(name: str, data: bytes, reason: str):
    with pytest.raises(UnreadableDocument) as caught:
        parse_document(data, f"/docs/{name}")
    message = str(caught.value)
    assert message.startswith(f"/docs/{name}: ") and reason in message
    assert "\n" not in message
