"""The citation health of one imported document: JSON, Markdown and HTML, and Robust Links.

For each citation of the document (document order): the URL as cited and canonical, where
and how it was cited, the source's state and latest verdict, its last change or
disappearance, whether the cited passage is still on the page, and where the preserved
copies are (the ``citearchive get`` command, and the web UI when its URL is known).
"""

from __future__ import annotations

import codecs
import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import lxml.html

from crawler.app import App
from crawler.archiving import checkable
from crawler.errors import NotFoundError, UsageError
from crawler.importer import document_id
from crawler.media_get import citation_media
from crawler.readers import UnreadableDocument, parse_document, read_document
from crawler.reports import capture_summary, source_state
from crawler.verdict import UNREACHABLE
from storage.ids import parse_rfc3339, source_id
from storage.index import CaptureRow, SourceRow

CHANGE_VERDICTS = ("changed", "gone", "moved")
# Health of a citation, in the order the summary line gives them.
HEALTH = ("live", "changed", "gone", "unreachable", "dead", "not captured")


def document_ref(app: App, document: str) -> str:
    """The document as ``import`` recorded it: canonical URL or absolute path."""
    if document.startswith(("http://", "https://")):
        return app.canonical(document)
    return str(Path(document).resolve())


def load_document(app: App, document: str) -> dict:
    """The imported document's record, or NotFoundError naming it."""
    ref = document_ref(app, document)
    record = app.archive.get_document(document_id(ref))
    if record is None:
        raise NotFoundError(f"{document}: not an imported document (import it first)")
    return record


def shell_quote(url: str) -> str:
    return "'" + url.replace("'", "'\"'\"'") + "'"


def memento_stamp(captured_at: str) -> str:
    return parse_rfc3339(captured_at).strftime("%Y%m%d%H%M%S")


def _answered(rows: list[CaptureRow]) -> list[CaptureRow]:
    return [r for r in rows if r.verdict != UNREACHABLE]


def version_capture(rows: list[CaptureRow], imported_at: str | None) -> CaptureRow | None:
    """The capture a citation points to: the latest one with content at or before the
    import, else the first one with content after it. "With content": answered and not
    ``gone`` (a 404 page is no version of what was cited)."""
    kept = [r for r in _answered(rows) if r.verdict != "gone"]
    if not kept:
        return None
    if imported_at:
        cutoff = parse_rfc3339(imported_at)
        before = [r for r in kept if parse_rfc3339(r.captured_at) <= cutoff]
        if before:
            return before[-1]
    return kept[0]


def _passage_status(app: App, rows: list[CaptureRow], passage: str | None) -> str:
    """present / missing / not checked, from the latest answered capture's manifest."""
    answered = _answered(rows)
    if not passage or not answered:
        return "not checked"
    manifest = app.archive.read_manifest(answered[-1].manifest_key).manifest
    checked = {p.get("passage"): p.get("present") for p in manifest.get("passages") or []}
    wanted = [q[:300] for q in checkable(passage)]
    if not all(q in checked for q in wanted):
        return "not checked"
    return "present" if all(checked[q] for q in wanted) else "missing"


@dataclass
class Links:
    """Where the preserved copies are."""

    ui_url: str | None

    def copy(self, url: str, row: CaptureRow) -> dict:
        record = {
            "capture_id": row.id,
            "captured_at": row.captured_at,
            "verdict": row.verdict,
            "command": f"citearchive get {shell_quote(url)} --at {row.captured_at}",
            "capture_url": None,
            "memento_url": None,
            "version_url": f"citearchive:capture/{row.id}",
        }
        if self.ui_url:
            record["capture_url"] = f"{self.ui_url}/captures/{row.id}"
            record["memento_url"] = f"{self.ui_url}/memento/{memento_stamp(row.captured_at)}/{url}"
            record["version_url"] = record["memento_url"]
        return record


def _health(state: str, last_change: dict | None, passage: str) -> str:
    if state == "pending":
        return "not captured"
    if state != "live":
        return state
    if passage == "missing" or (last_change and last_change["verdict"] in ("changed", "moved")):
        return "changed"
    return "live"


def _ordered(record: dict, pairs: list[tuple[SourceRow, dict]]) -> list[tuple[SourceRow, dict]]:
    """Citations in document order: as a fresh read of the same document lists them when it
    is still there unchanged, else by source (first cited first), then within a source."""
    order: dict[tuple[str, str | None], int] = {}
    ref = record["ref"]
    if not ref.startswith(("http://", "https://")):
        try:
            parsed = read_document(Path(ref))
        except (OSError, UsageError):
            parsed = None
        if parsed is not None and parsed.sha256 == record.get("sha256"):
            for n, link in enumerate(parsed.links):
                order.setdefault((link.url, link.location), n)
    fallback = len(order)
    keyed = [
        (order.get((c.get("url"), c.get("location")), fallback), n, (s, c))
        for n, (s, c) in enumerate(pairs)
    ]
    return [pair for *_, pair in sorted(keyed, key=lambda k: (k[0], k[1]))]


def build_report(app: App, document: str, ui_url: str | None = None) -> dict:
    """The JSON report of ``document`` (as ``import`` took it)."""
    record = load_document(app, document)
    ref = record["ref"]
    ui = (ui_url or app.config.notify.ui_url or "").rstrip("/") or None
    links = Links(ui)
    dead_after = app.config.verdicts.dead_after
    pairs = []
    for canonical in record.get("sources", []):
        source = app.index.get_source(source_id(canonical))
        if source is None:
            continue
        for citation in source.citations:
            if citation.get("document") == ref:
                pairs.append((source, citation))
    citations = []
    captures_of: dict[str, list[CaptureRow]] = {}
    for number, (source, citation) in enumerate(_ordered(record, pairs), start=1):
        if source.id not in captures_of:
            captures_of[source.id] = app.index.captures(source.id)
        rows = captures_of[source.id]
        state = source_state(rows, dead_after)
        latest = rows[-1] if rows else None
        changes = [r for r in rows if r.verdict in CHANGE_VERDICTS]
        last_change = (
            {"verdict": changes[-1].verdict, "captured_at": changes[-1].captured_at,
             "capture_id": changes[-1].id, "reason": changes[-1].reason}
            if changes
            else None
        )  # fmt: skip
        passage_status = _passage_status(app, rows, citation.get("passage"))
        version = version_capture(rows, record.get("imported_at"))
        answered = _answered(rows)
        copies = []
        if version is not None:
            copies.append({"role": "cited version", **links.copy(source.canonical_url, version)})
        if answered and (version is None or answered[-1].id != version.id):
            copies.append({"role": "latest", **links.copy(source.canonical_url, answered[-1])})
        citations.append(
            {
                "number": number,
                "url": citation.get("url") or source.canonical_url,
                "canonical_url": source.canonical_url,
                "source_id": source.id,
                "location": citation.get("location"),
                "anchor": citation.get("anchor"),
                "passage": citation.get("passage"),
                "state": state,
                "health": _health(state, last_change, passage_status),
                "verdict": latest.verdict if latest else None,
                "reason": latest.reason if latest else None,
                "latest_capture": None if latest is None else capture_summary(latest),
                "captures": len(rows),
                "last_change": last_change,
                "passage_status": passage_status,
                "media": citation_media(app, rows),
                "version": None if version is None else copies[0],
                "copies": copies,
            }
        )
    counts = {h: sum(1 for c in citations if c["health"] == h) for h in HEALTH}
    missing = sum(1 for c in citations if c["passage_status"] == "missing")
    return {
        "document": ref,
        "kind": record.get("kind"),
        "sha256": record.get("sha256"),
        "imported_at": record.get("imported_at"),
        "ui_url": ui,
        "summary": summary_line(len(citations), counts, missing),
        "counts": counts,
        "passages_missing": missing,
        "citations": citations,
    }


def summary_line(total: int, counts: dict[str, int], missing: int) -> str:
    parts = [f"{counts[h]} {h}" for h in HEALTH if h in ("live", "changed", "gone") or counts[h]]
    line = f"{total} citation{'s' if total != 1 else ''}: " + ", ".join(parts)
    if missing:
        line += f"; {missing} cited passage{'s' if missing != 1 else ''} missing"
    return line


# Markdown


def _md(text: str | None) -> str:
    if not text:
        return "-"
    text = re.sub(r"\s+", " ", text)
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)


def to_markdown(report: dict) -> str:
    lines = [
        f"# Citation report: {_md(report['document'])}",
        "",
        f"**{report['summary']}**",
        "",
        f"Imported {report['imported_at'] or '-'} ({report['kind']}, sha256 {report['sha256']}).",
        "",
        "| # | URL | health | latest verdict | last changed / gone | cited passage |",
        "|---|---|---|---|---|---|",
    ]
    for c in report["citations"]:
        change = c["last_change"]
        when = f"{change['verdict']} {change['captured_at']}" if change else "-"
        lines.append(
            f"| {c['number']} | {_md(c['url'])} | {c['health']} | {c['verdict'] or '-'} "
            f"| {when} | {c['passage_status']} |"
        )
    for c in report["citations"]:
        lines += ["", f"## {c['number']}. {_md(c['url'])}", ""]
        lines.append(f"- canonical: {_md(c['canonical_url'])}")
        lines.append(f"- location: {_md(c['location'])}")
        lines.append(f"- anchor: {_md(c['anchor'])}")
        lines.append(f"- passage: {_md(c['passage'])} ({c['passage_status']})")
        verdict = f"{c['verdict']} ({_md(c['reason'])})" if c["verdict"] else "never captured"
        lines.append(f"- state: {c['state']}; latest verdict: {verdict}")
        if c.get("media"):
            lines.append(f"- media: {_md(c['media'])}")
        change = c["last_change"]
        if change:
            lines.append(
                f"- last {change['verdict']}: {change['captured_at']} "
                f"(capture {change['capture_id']})"
            )
        for copy in c["copies"]:
            lines.append(f"- {copy['role']} ({copy['captured_at']}): `{copy['command']}`")
            if copy["capture_url"]:
                lines.append(f"  - capture: <{copy['capture_url']}>")
                lines.append(f"  - memento: <{copy['memento_url']}>")
    return "\n".join(lines) + "\n"


# HTML

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%;margin:1em 0}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.url{word-break:break-all}
.live{color:#176217}.changed{color:#8a5a00}.gone,.dead{color:#a31515}
.unreachable,.not-captured{color:#666} .summary{font-size:1.15em;font-weight:600}
section{border-top:1px solid #ddd;margin-top:1em} code{background:#f5f5f5;padding:0 .2em}
blockquote{margin:.3em 0 .3em 1em;color:#444;border-left:3px solid #ddd;padding-left:.6em}
"""


def _h(value: object) -> str:
    return html.escape("-" if value is None or value == "" else str(value), quote=True)


def _a(url: str | None, text: str | None = None) -> str:
    if not url:
        return "-"
    if url.lower().startswith(("http://", "https://")):
        return f'<a href="{_h(url)}" rel="noreferrer noopener">{_h(text or url)}</a>'
    return _h(text or url)


def to_html(report: dict) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="referrer" content="no-referrer">',
        f"<title>Citation report: {_h(report['document'])}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Citation report: {_h(report['document'])}</h1>",
        f'<p class="summary">{_h(report["summary"])}</p>',
        f"<p>Imported {_h(report['imported_at'])} ({_h(report['kind'])}, "
        f"sha256 <code>{_h(report['sha256'])}</code>).</p>",
        "<table><thead><tr><th>#</th><th>URL as cited</th><th>health</th>"
        "<th>latest verdict</th><th>last changed / gone</th><th>cited passage</th>"
        "</tr></thead><tbody>",
    ]
    for c in report["citations"]:
        change = c["last_change"]
        when = f"{change['verdict']} {change['captured_at']}" if change else None
        cls = c["health"].replace(" ", "-")
        out.append(
            f'<tr><td><a href="#c{c["number"]}">{c["number"]}</a></td>'
            f'<td class="url">{_h(c["url"])}</td><td class="{cls}">{_h(c["health"])}</td>'
            f"<td>{_h(c['verdict'])}</td><td>{_h(when)}</td><td>{_h(c['passage_status'])}</td>"
            "</tr>"
        )
    out.append("</tbody></table>")
    for c in report["citations"]:
        out.append(f'<section id="c{c["number"]}"><h2>{c["number"]}. {_h(c["url"])}</h2><ul>')
        out.append(f"<li>canonical: {_a(c['canonical_url'])}</li>")
        out.append(f"<li>location: <code>{_h(c['location'])}</code></li>")
        out.append(f"<li>anchor: {_h(c['anchor'])}</li>")
        out.append(
            f"<li>passage ({_h(c['passage_status'])}):<blockquote>{_h(c['passage'])}"
            "</blockquote></li>"
        )
        verdict = f"{c['verdict']} ({c['reason'] or ''})" if c["verdict"] else "never captured"
        out.append(f"<li>state: {_h(c['state'])}; latest verdict: {_h(verdict)}</li>")
        if c.get("media"):
            out.append(f"<li>media: {_h(c['media'])}</li>")
        change = c["last_change"]
        if change:
            out.append(
                f"<li>last {_h(change['verdict'])}: {_h(change['captured_at'])} "
                f"(capture <code>{_h(change['capture_id'])}</code>)</li>"
            )
        for copy in c["copies"]:
            out.append(
                f"<li>{_h(copy['role'])} ({_h(copy['captured_at'])}): "
                f"<code>{_h(copy['command'])}</code>"
            )
            if copy["capture_url"]:
                out.append(
                    f" — {_a(copy['capture_url'], 'capture')}, {_a(copy['memento_url'], 'memento')}"
                )
            out.append("</li>")
        out.append("</ul></section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# Robust Links


class _StartTags(HTMLParser):
    """Every ``<a>`` start tag of a document: its offset and exact text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.starts = [0]
        for line in text.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))
        self.tags: list[tuple[int, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "a":
            line, col = self.getpos()
            href = next((v for k, v in attrs if k == "href"), None)
            self.tags.append((self.starts[line - 1] + col, self.get_starttag_text() or "", href))


def _encoding(tree: lxml.html.HtmlElement) -> str:
    declared = tree.getroottree().docinfo.encoding or "utf-8"
    try:
        return codecs.lookup(declared).name
    except LookupError:
        return "utf-8"


def _cited_elements(data: bytes, citations: list[dict]) -> tuple[lxml.html.HtmlElement, dict]:
    """The parsed document and, for each ``a`` element (by its position among all ``a``
    elements) that is a recorded citation, that citation."""
    from crawler.readers import html as reader

    tree = lxml.html.document_fromstring(data)
    work = lxml.html.document_fromstring(data)  # the reader drops scripts; keep tree intact
    position = {el: n for n, el in enumerate(work.iter("a"))}
    base = reader._base_url(work)
    for bad in work.xpath("|".join(f"//{tag}" for tag in reader._DROP_TAGS)):
        bad.drop_tree()
    excluded = reader._boilerplate(work)
    root = reader._main_root(work, excluded)
    walker = reader._Links(root, excluded, base)
    wanted = {(c.get("url"), c.get("location")): c for c in citations}
    found: dict[int, dict] = {}
    for a in root.iter("a"):
        if a.get("href") is None or reader._is_excluded(a, excluded, stop=root):
            continue
        tweet = reader._tweet_of(a)
        if tweet is not None:
            if a is not tweet.xpath(".//a[@href]")[-1]:
                continue
            links = walker._tweet(a, tweet)
        else:
            links = walker._link(a)
        for link in links:
            citation = wanted.get((link.url, link.location))
            if citation is not None:
                found[position[a]] = citation
    return tree, found


def robust_links(data: bytes, citations: list[dict]) -> bytes:
    """``data`` (an HTML document) with Robust Links attributes on its cited links.

    Each citation dict carries ``url`` and ``location`` (as the import recorded them) and
    ``attributes`` (name -> value). The attributes are spliced into the original start tags
    so everything else keeps its bytes; if the tags cannot be matched one to one with the
    parsed links, the document is re-serialised by lxml instead.
    """
    tree, found = _cited_elements(data, citations)
    encoding = _encoding(tree)
    text = data.decode(encoding, "surrogateescape")
    parser = _StartTags(text)
    parser.feed(text)
    parser.close()
    elements = list(tree.iter("a"))
    tags = _align(elements, parser.tags)
    if tags is not None and all("data-versionurl" not in tags[n][1] for n in found):
        pieces, last = [], 0
        for n in sorted(found):
            offset, tag_text, _ = tags[n]
            # Before the closing ">": also right for an unquoted href ending in "/", and a
            # "/" of "<a .../>" left before the attributes is ignored by HTML parsers.
            end = offset + len(tag_text) - 1
            attrs = "".join(f' {k}="{_attr(v)}"' for k, v in found[n]["attributes"].items() if v)
            pieces += [text[last:end], attrs]
            last = end
        pieces.append(text[last:])
        return "".join(pieces).encode(encoding, "surrogateescape")
    for n, citation in found.items():
        for key, value in citation["attributes"].items():
            if value:
                elements[n].set(key, value)
    doctype = tree.getroottree().docinfo.doctype
    return lxml.html.tostring(tree, encoding=encoding, doctype=doctype or None)


def _align(elements: list, tags: list[tuple[int, str, str | None]]) -> list | None:
    """The start tag of each parsed ``a`` element, in order, matched by href; the raw text
    may hold more ``<a`` tags than the tree (inside ``textarea``, ``title``...), which are
    skipped. None when some element has no tag."""
    matched = []
    position = 0
    for el in elements:
        href = (el.get("href") or "").strip()
        while position < len(tags) and (tags[position][2] or "").strip() != href:
            position += 1
        if position == len(tags):
            return None
        matched.append(tags[position])
        position += 1
    return matched


def _attr(value: str) -> str:
    """An attribute value safe in any encoding: escaped, non-ASCII as character references."""
    escaped = html.escape(value, quote=True)
    return escaped.encode("ascii", "xmlcharrefreplace").decode("ascii")


def robust_links_document(app: App, report: dict, record_kind: str | None) -> bytes:
    """The imported HTML document with Robust Links attributes on its cited links."""
    ref = report["document"]
    if record_kind != "html":
        raise UsageError(f"{ref}: --robust-links needs an HTML document, not {record_kind}")
    prefix = b""
    if ref.startswith(("http://", "https://")):
        data, prefix = _article_dom(app, ref)
    else:
        try:
            data = Path(ref).read_bytes()
        except OSError as exc:
            raise NotFoundError(f"{ref}: cannot read the document: {exc.strerror}") from exc
    try:
        parse_document(prefix + data, ref)
    except UnreadableDocument as exc:
        raise UsageError(str(exc)) from exc
    citations = []
    for c in report["citations"]:
        version = c["version"]
        attributes = {"data-originalurl": c["url"]}
        if version is not None:
            attributes["data-versionurl"] = version["version_url"]
            attributes["data-versiondate"] = parse_rfc3339(version["captured_at"]).strftime(
                "%Y-%m-%d"
            )
        citations.append({"url": c["url"], "location": c["location"], "attributes": attributes})
    out = robust_links(prefix + data, citations)
    return out[len(prefix) :] if prefix and out.startswith(prefix) else out


def _article_dom(app: App, url: str) -> tuple[bytes, bytes]:
    """An article imported by URL: its rendered DOM as the import read it (the latest
    capture with a DOM), and the ``<base>`` the import put before it."""
    row = app.index.get_source(source_id(url))
    captures = [r for r in app.index.captures(row.id) if "dom" in r.artifacts] if row else []
    if not captures:
        raise NotFoundError(f"{url}: no rendered copy of the article is stored")
    capture = captures[-1]
    dom = app.archive.get_blob(capture.artifacts["dom"]["sha256"])
    prefix = (
        b"" if b"<base " in dom[:4096] else f'<base href="{capture.final_url or url}">'.encode()
    )
    return dom, prefix
