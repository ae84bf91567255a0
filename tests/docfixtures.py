"""Small documents built in code for the reader tests: an HTML article, a PDF, a DOCX.

Nothing binary is committed; each generator returns the bytes of a valid document.
"""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape, quoteattr

from fixture_site import assemble_pdf

NEWS_ARTICLE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Flood report</title>
<link rel="canonical" href="https://news.example/2024/floods/">
<script>var tracker = "https://tracker.example/pixel";</script>
</head><body class="layout-with-sidebar">
<header class="site-header"><a href="https://news.example/">Home</a>
  <nav><a href="https://news.example/world">World</a></nav></header>
<div id="cookie-banner"><a href="https://news.example/privacy">Privacy</a></div>
<div class="main-with-sidebar">
<article>
  <h1>Rivers rise</h1>
  <p>The river rose two metres overnight.
     The <a href="https://water.example/gauges/42">gauge data</a> shows the peak at dawn.
     Officials expect more rain.</p>
  <p>Evacuations began in <a href="/2024/floods/map">three districts</a>, according to
     <a href="mailto:press@news.example">the press office</a>.</p>
  <div class="share-tools"><a href="https://social.example/share?u=x">Share</a></div>
  <p>See <a href="#sources">the sources</a> below.</p>
  <blockquote class="twitter-tweet"><p lang="en" dir="ltr">Water is at the bridge deck now.
    <a href="https://t.co/abc123">pic.twitter.com/abc123</a></p>&mdash; Met Office (@metoffice)
    <a href="https://twitter.com/metoffice/status/1234567890?ref_src=twsrc%5Etfw">March 3, 2024</a>
  </blockquote>
  <ul><li>Earlier: <a href="https://news.example/2024/floods/day1">Day one</a></li></ul>
  <nav><a href="https://news.example/2024/floods/#part2">Next part</a></nav>
  <div role="complementary"><a href="https://news.example/explainer">Explainer</a></div>
  <footer><a href="https://news.example/tags/floods">floods</a></footer>
</article>
<aside><a href="https://news.example/weather">Weather</a></aside>
<div class="related-stories"><article><a href="https://news.example/other">Other story</a>
  </article></div>
</div>
<section id="comments"><p>Great work, see <a href="https://spam.example/">my site</a></p></section>
<footer><a href="https://news.example/about">About us</a></footer>
</body></html>
"""


def many_links_html(count: int) -> bytes:
    """One article paragraph holding ``count`` distinct links."""
    links = " ".join(f'See <a href="https://example.org/{n}">source {n}</a>.' for n in range(count))
    return f"<!doctype html><html><body><article><p>{links}</p></article></body></html>".encode()


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_link_pdf(
    lines: list[str | list[tuple[int, str]]],
    annotations: list[tuple[tuple[int, int, int, int], str]],
) -> bytes:
    """A one-page PDF with link annotations ``(rect, uri)`` (URI actions) and text in 12 pt
    Helvetica: line i on baseline 720 - 20 i, either one string at x=72 or segments
    ``(x, text)`` each in its own text object, as PDF writers set a styled link apart.
    Object offsets are computed, so the xref table is exact."""
    objects_text = []
    for i, line in enumerate(lines):
        segments = [(72, line)] if isinstance(line, str) else line
        objects_text += [
            f"BT /F1 12 Tf 1 0 0 1 {x} {720 - 20 * i} Tm {_pdf_string(text)} Tj ET"
            for x, text in segments
        ]
    stream = "\n".join(objects_text).encode()
    first_annot = 6
    annot_refs = " ".join(f"{first_annot + i} 0 R" for i in range(len(annotations)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> /Annots [%s] >>" % annot_refs.encode(),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for rect, uri in annotations:
        box = " ".join(str(n) for n in rect)
        objects.append(
            f"<< /Type /Annot /Subtype /Link /Rect [{box}] /Border [0 0 0] "
            f"/A << /S /URI /URI {_pdf_string(uri)} >> >>".encode()
        )
    return assemble_pdf(objects)


# --- DOCX -------------------------------------------------------------------------------

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_HYPERLINK = f"{_R}/hyperlink"

CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml"
 ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
<Override PartName="/word/footnotes.xml"
 ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"/>
</Types>"""

ROOT_RELS = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="{_PKG_RELS}">
<Relationship Id="rId1" Type="{_R}/officeDocument" Target="word/document.xml"/>
</Relationships>"""


def run(text: str) -> str:
    """A ``w:r`` run of plain text."""
    return f'<w:r><w:t xml:space="preserve">{escape(text)}</w:t></w:r>'


def hyperlink(rel_id: str, text: str) -> str:
    return f'<w:hyperlink r:id="{rel_id}">{run(text)}</w:hyperlink>'


def footnote_ref(note_id: int) -> str:
    return f'<w:r><w:footnoteReference w:id="{note_id}"/></w:r>'


def _rels(targets: dict[str, str]) -> str:
    rows = "".join(
        f'<Relationship Id="{rid}" Type="{_HYPERLINK}" Target={quoteattr(url)}'
        ' TargetMode="External"/>'
        for rid, url in targets.items()
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_PKG_RELS}">{rows}'


def make_docx(
    paragraphs: list[str],
    links: dict[str, str],
    footnotes: list[str] = (),
    footnote_links: dict[str, str] | None = None,
) -> bytes:
    """A DOCX whose body holds ``paragraphs`` (inner XML of each ``w:p``, built with
    ``run``/``hyperlink``/``footnote_ref``), ``links`` the body's hyperlink rels, and
    ``footnotes`` (inner XML of each ``w:p`` of footnotes 1, 2, ...) with their own rels."""
    ns = f'xmlns:w="{_W}" xmlns:r="{_R}"'
    body = "".join(f"<w:p>{p}</w:p>" for p in paragraphs)
    document = f'<?xml version="1.0" encoding="UTF-8"?><w:document {ns}><w:body>{body}</w:body>'
    rels = _rels(links) + (
        f'<Relationship Id="rIdFootnotes" Type="{_R}/footnotes" Target="footnotes.xml"/>'
    )
    notes = "".join(
        f'<w:footnote w:id="{n}"><w:p>{text}</w:p></w:footnote>'
        for n, text in enumerate(footnotes, start=1)
    )
    separators = (
        '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p>'
        '</w:footnote><w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r>'
        "<w:continuationSeparator/></w:r></w:p></w:footnote>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", CONTENT_TYPES)
        zf.writestr("_rels/.rels", ROOT_RELS)
        zf.writestr("word/document.xml", document + "</w:document>")
        zf.writestr("word/_rels/document.xml.rels", rels + "</Relationships>")
        zf.writestr(
            "word/footnotes.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><w:footnotes {ns}>{separators}{notes}'
            "</w:footnotes>",
        )
        zf.writestr(
            "word/_rels/footnotes.xml.rels", _rels(footnote_links or {}) + "</Relationships>"
        )
    return buffer.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    """A plain zip archive (not a DOCX) holding ``members``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()
