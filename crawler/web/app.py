"""The Flask application: server-rendered pages over the index, artifacts, diffs and Memento.

Security model (see docs/web.md): the UI is read-only. Archived pages are hostile content:
they are only ever served under ``Content-Security-Policy: sandbox`` with no script source
and no network source, so they run no script in the UI's origin and load nothing from the
live web. Without a token the app answers only requests addressed to a loopback host name
(DNS rebinding cannot reach it); with a token every request needs it.
"""

from __future__ import annotations

import hmac
import re
import threading
from urllib.parse import urlencode

from flask import Flask, Response, abort, redirect, render_template, request

from crawler.app import App, parse_time
from crawler.config import Config
from crawler.diffing import DiffSide, html_diff
from crawler.errors import CitearchiveError, InvalidURLError, NotFoundError, UsageError
from crawler.reports import source_state
from crawler.web import memento as mem
from crawler.web.media import media_response, media_view
from storage.index import CaptureRow, SourceRow

# Archived content: no script, no plugins, no network; its own opaque origin.
SANDBOX_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
# The diff page is self-contained (inline CSS, data: images) and needs no script either.
DIFF_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
# The UI's own pages: no script at all; images and frames only from the UI itself.
UI_CSP = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; "
    "frame-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
COOKIE = "citearchive_token"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
CHANGE_VERDICTS = {"changed", "gone", "moved", "restored"}
SAFE_MEDIA = {"image/png", "image/jpeg", "image/gif", "image/webp", "text/plain"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


class _AppHolder:
    """One ``App`` per Flask app, opened on first use.

    The index's SQLAlchemy engine keeps a connection pool that is safe across waitress's
    worker threads, and the archive's stores hold no per-request state.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._app: App | None = None
        self._lock = threading.Lock()

    def get(self) -> App:
        with self._lock:
            if self._app is None:
                self._app = App.open(self.config)
            return self._app

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.close()
                self._app = None


def create_app(config: Config, token: str | None = None) -> Flask:
    """The web UI over ``config``'s archive; ``token`` (if any) is required on every request."""
    flask_app = Flask(__name__)
    flask_app.url_map.merge_slashes = False  # /timegate/https://... keeps its two slashes
    flask_app.url_map.strict_slashes = False
    holder = _AppHolder(config)
    flask_app.extensions["citearchive"] = holder

    def archive_app() -> App:
        return holder.get()

    @flask_app.before_request
    def authenticate() -> Response | None:
        if token is None:
            if _hostname(request.host) not in LOOPBACK_HOSTS:
                abort(421)
            return None
        offered = request.headers.get("Authorization", "")
        if offered.startswith("Bearer ") and _same(offered[7:].strip(), token):
            return None
        if _same(request.cookies.get(COOKIE, ""), token):
            return None
        if _same(request.args.get("token", ""), token):
            # Set the cookie and drop the token from the address bar and history.
            rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
            target = request.path + (f"?{urlencode(rest)}" if rest else "")
            response = redirect(target, code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
            return response
        response = Response("token required\n", status=401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="citearchive"'
        return response

    @flask_app.after_request
    def common_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", UI_CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @flask_app.errorhandler(CitearchiveError)
    def citearchive_error(exc: CitearchiveError) -> tuple[str, int]:
        code = 404 if isinstance(exc, NotFoundError | InvalidURLError) else 500
        if isinstance(exc, UsageError) and not isinstance(exc, InvalidURLError):
            code = 400
        return render_template("error.html", code=code, message=str(exc)), code

    # Pages

    @flask_app.get("/")
    def sources() -> str:
        app = archive_app()
        document = request.args.get("document") or None
        verdict = request.args.get("verdict") or None
        rows, documents, verdicts = [], set(), set()
        for source in app.index.list_sources():
            captures = app.index.captures(source.id)
            docs = _documents(source)
            documents |= docs
            latest = captures[-1] if captures else None
            if latest is not None:
                verdicts.add(latest.verdict)
            if document is not None and document not in docs:
                continue
            if verdict is not None and (latest is None or latest.verdict != verdict):
                continue
            change = next((c for c in reversed(captures) if c.verdict in CHANGE_VERDICTS), None)
            rows.append(
                {
                    "source": source,
                    "state": source_state(captures, app.config.verdicts.dead_after),
                    "latest": latest,
                    "change": change,
                }
            )
        return render_template(
            "sources.html",
            rows=rows,
            document=document,
            verdict=verdict,
            documents=sorted(documents),
            verdicts=sorted(verdicts),
        )

    @flask_app.get("/sources/<source_id>")
    def source_page(source_id: str) -> str:
        app = archive_app()
        source = app.index.get_source(source_id)
        if source is None:
            raise NotFoundError(f"{source_id}: no such source")
        captures = app.index.captures(source.id)
        timeline, previous = [], None
        for row in captures:
            has_text = "text" in row.artifacts
            timeline.append({"row": row, "previous": previous if has_text else None})
            if has_text:
                previous = row
        timeline.reverse()
        return render_template(
            "source.html",
            source=source,
            state=source_state(captures, app.config.verdicts.dead_after),
            timeline=timeline,
        )

    @flask_app.get("/captures/<capture_id>")
    def capture_page(capture_id: str) -> str:
        app = archive_app()
        row = _capture(app, capture_id)
        source = app.index.get_source(row.source_id)
        manifest = app.archive.read_manifest(row.manifest_key).manifest
        rendered = _rendered(app, row)
        # A re-check that matched a rendered capture shows that capture's media too.
        media_row = row if manifest.get("media") or rendered.id == row.id else rendered
        return render_template(
            "capture.html",
            row=row,
            rendered=rendered,
            media_row=media_row,
            media=media_view(app, media_row),
            source=source,
            headers=manifest.get("headers") or [],
            redirects=manifest.get("redirect_chain") or [],
            artifacts=sorted(row.artifacts.items()),
        )

    @flask_app.get("/captures/<capture_id>/page")
    def capture_dom(capture_id: str) -> Response:
        app = archive_app()
        return _dom_response(app, _rendered(app, _capture(app, capture_id)))

    @flask_app.get("/captures/<capture_id>/media/<int:n>")
    def capture_media(capture_id: str, n: int) -> Response:
        app = archive_app()
        response = media_response(app, _capture(app, capture_id), n, request)
        response.headers["Content-Security-Policy"] = SANDBOX_CSP
        return response

    @flask_app.get("/blobs/<sha>")
    def blob(sha: str) -> Response:
        if not _SHA256.fullmatch(sha):
            abort(404)
        app = archive_app()
        if not app.archive.has_blob(sha):
            abort(404)
        data = app.archive.get_blob(sha)
        media = _media_type(app, sha, data, request.args.get("capture"))
        response = Response(data)
        response.headers["Content-Security-Policy"] = SANDBOX_CSP
        response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
        if media in SAFE_MEDIA:
            charset = "; charset=utf-8" if media == "text/plain" else ""
            response.headers["Content-Type"] = media + charset
        else:
            response.headers["Content-Type"] = "application/octet-stream"
            response.headers["Content-Disposition"] = f'attachment; filename="{sha}"'
        return response

    @flask_app.get("/diff/<from_id>/<to_id>")
    def diff(from_id: str, to_id: str) -> Response:
        app = archive_app()
        a, b = _capture(app, from_id), _capture(app, to_id)
        page = html_diff(_side(app, a), _side(app, b))
        response = Response(page, mimetype="text/html")
        response.headers["Content-Security-Policy"] = DIFF_CSP
        return response

    @flask_app.get("/documents")
    def documents() -> str:
        app = archive_app()
        ref = request.args.get("ref") or None
        known: set[str] = set()
        cited = []
        for source in app.index.list_sources():
            docs = _documents(source)
            known |= docs
            if ref is None or ref not in docs:
                continue
            captures = app.index.captures(source.id)
            state = source_state(captures, app.config.verdicts.dead_after)
            for citation in source.citations:
                if citation.get("document") == ref:
                    cited.append(
                        {
                            "source": source,
                            "citation": citation,
                            "state": state,
                            "latest": captures[-1] if captures else None,
                        }
                    )
        return render_template("documents.html", ref=ref, cited=cited, known=sorted(known))

    # Memento (RFC 7089)

    @flask_app.get("/timegate/<path:url>")
    def timegate(url: str) -> Response:
        app = archive_app()
        source, rows = _memento_source(app, _target(url))
        accept = request.headers.get("Accept-Datetime")
        try:
            at = mem.parse_http_date(accept) if accept is not None else None
        except ValueError:
            response = Response("Accept-Datetime must be an RFC 1123 date\n", 400)
            response.mimetype = "text/plain"
            response.headers["Vary"] = "accept-datetime"
            return response
        chosen = mem.choose(rows, at)
        response = redirect(_memento_url(source, chosen), code=302)
        response.headers["Vary"] = "accept-datetime"
        response.headers["Link"] = ", ".join(
            [
                mem.link(source.canonical_url, "original"),
                mem.link(_timemap_url(source), "timemap", type="application/link-format"),
            ]
        )
        return response

    @flask_app.get("/timemap/link/<path:url>")
    def timemap(url: str) -> Response:
        app = archive_app()
        source, rows = _memento_source(app, _target(url))
        first, last = mem.capture_time(rows[0]), mem.capture_time(rows[-1])
        links = [
            mem.link(source.canonical_url, "original"),
            mem.link(
                _timemap_url(source),
                "self",
                type="application/link-format",
                **{"from": mem.http_date(first), "until": mem.http_date(last)},
            ),
            mem.link(_timegate_url(source), "timegate"),
        ]
        for n, row in enumerate(rows):
            links.append(
                mem.link(
                    _memento_url(source, row),
                    mem.timemap_rel(n, len(rows)),
                    datetime=mem.http_date(mem.capture_time(row)),
                )
            )
        return Response(",\n".join(links) + "\n", mimetype="application/link-format")

    @flask_app.get("/memento/<key>/<path:url>")
    def memento(key: str, url: str) -> Response:
        try:
            at = mem.parse_key(key)
        except ValueError:
            abort(404)
        app = archive_app()
        source, rows = _memento_source(app, _target(url))
        chosen = mem.choose(rows, at)
        response = _dom_response(app, chosen)
        response.headers["Memento-Datetime"] = mem.http_date(mem.capture_time(chosen))
        response.headers["Link"] = ", ".join(
            [
                mem.link(source.canonical_url, "original"),
                mem.link(_timegate_url(source), "timegate"),
                mem.link(_timemap_url(source), "timemap", type="application/link-format"),
            ]
        )
        canonical = _memento_url(source, chosen)
        if mem.memento_key(chosen) != key:
            response.headers["Content-Location"] = canonical
        return response

    return flask_app


def _hostname(host: str) -> str:
    """The name in a Host header, without the port ("[::1]:8077" -> "[::1]")."""
    host = host.lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


def _same(offered: str, token: str) -> bool:
    return bool(offered) and hmac.compare_digest(offered.encode(), token.encode())


def _documents(source: SourceRow) -> set[str]:
    return {c["document"] for c in source.citations if c.get("document")}


def _capture(app: App, capture_id: str) -> CaptureRow:
    row = app.index.get_capture(capture_id)
    if row is None:
        raise NotFoundError(f"{capture_id}: no such capture")
    return row


def _rendered(app: App, row: CaptureRow) -> CaptureRow:
    """The capture whose rendered page shows ``row``: itself, or for a cheap re-check that
    found the source unchanged (docs/rechecks.md), the last rendered capture before it."""
    source = app.index.get_source(row.source_id)
    if "dom" in row.artifacts or row.verdict != "unchanged" or source is None:
        return row
    try:
        return app.capture_at(source, parse_time(row.captured_at), "dom")
    except NotFoundError:
        return row


def _dom_response(app: App, row: CaptureRow) -> Response:
    dom = row.artifacts.get("dom")
    if dom is None:
        raise NotFoundError(f"capture {row.id} has no rendered page ({row.verdict})")
    response = Response(app.archive.get_blob(dom["sha256"]))
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = SANDBOX_CSP
    return response


def _side(app: App, row: CaptureRow) -> DiffSide:
    if "text" not in row.artifacts:
        raise NotFoundError(f"capture {row.id} has no text ({row.verdict}: {row.reason})")
    source = app.index.get_source(row.source_id)
    text = app.archive.get_blob(row.artifacts["text"]["sha256"]).decode("utf-8", "replace")
    shot = row.artifacts.get("screenshot")
    return DiffSide(
        capture_id=row.id,
        captured_at=row.captured_at,
        url=row.final_url or (source.canonical_url if source else ""),
        text=text,
        screenshot=app.archive.get_blob(shot["sha256"]) if shot else None,
    )


def _media_type(app: App, sha: str, data: bytes, capture_id: str | None) -> str:
    """The artifact's recorded media type (via ``?capture=``), else images by signature."""
    if capture_id:
        row = app.index.get_capture(capture_id)
        for meta in (row.artifacts if row else {}).values():
            if meta.get("sha256") == sha:
                return str(meta.get("media_type", "")).split(";")[0].strip().lower()
    for magic, media in _MAGIC:
        if data.startswith(magic):
            return media
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def _target(url: str) -> str:
    """The URL named in a Memento path, with the request's query string put back."""
    query = request.query_string.decode("latin-1")
    return f"{url}?{query}" if query else url


def _memento_source(app: App, url: str) -> tuple[SourceRow, list[CaptureRow]]:
    source = app.source_for(url)
    rows = mem.mementos(app.index.captures(source.id))
    if not rows:
        raise NotFoundError(f"{source.canonical_url}: no memento (no capture with a page)")
    return source, rows


def _base() -> str:
    return request.host_url.rstrip("/")


def _timegate_url(source: SourceRow) -> str:
    return f"{_base()}/timegate/{source.canonical_url}"


def _timemap_url(source: SourceRow) -> str:
    return f"{_base()}/timemap/link/{source.canonical_url}"


def _memento_url(source: SourceRow, row: CaptureRow) -> str:
    return f"{_base()}/memento/{mem.memento_key(row)}/{source.canonical_url}"
