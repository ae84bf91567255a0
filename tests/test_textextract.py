"""Main text: trafilatura for HTML (with a fallback for short pages), pypdf for PDFs."""

from __future__ import annotations

from fixture_site import make_pdf

from crawler.textextract import html_text, main_text, pdf_text


def test_pdf_text_layer():
    assert "Kabul alert 25 August" in pdf_text(make_pdf("Kabul alert 25 August"))
    assert pdf_text(b"%PDF-1.4 broken") == ""


def test_short_page_falls_back_to_visible_text_without_scripts():
    text = html_text(
        "<html><body><h1>Status</h1><script>var x='secret'</script>"
        "<p>Rendered by script 8125</p></body></html>"
    )
    assert "Rendered by script 8125" in text and "secret" not in text


def test_dispatch_by_media_type():
    assert main_text("application/pdf", make_pdf("abc def"), "") == "abc def"
    assert main_text("image/png", b"\x89PNG", "") == ""
    assert main_text("text/plain", b"plain words", "") == "plain words"
