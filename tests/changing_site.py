"""A local "changing web": a site whose pages move through epochs, for verdict tests.

``page(path, epoch)`` says what each path answers in each epoch; the test advances
``site.epoch`` between capture runs and checks every verdict. Unknown paths answer 200 with
the site's not-found page (a soft-404 site), which is what the host probe will see.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fixture_site import make_pdf, respond

NOT_FOUND = "<title>Page not found</title><h1>Page not found</h1><p>Sorry, we looked everywhere."
ARTICLE = (
    "Because of security threats outside the gates of Kabul airport, we are advising US "
    "citizens to avoid traveling to the airport. US citizens who are at the Abbey Gate should "
    "leave immediately. The embassy will post updates on its website."
)


def doc(body: str, head: str = "") -> bytes:
    return (
        f"<!DOCTYPE html><html><head><meta charset=utf-8>{head}</head><body>{body}</body></html>"
    ).encode()


def article(text: str, extra: str = "", title: str = "Security alert") -> bytes:
    return doc(
        f"<article><h1>{title}</h1><p>{text}</p></article>{extra}", f"<title>{title}</title>"
    )


def noise(epoch: int) -> bytes:
    """Same article; clocks, counters, nonces, ads, related lists, banners all move."""
    related = ["Flights resume", "Markets open", "Weather warning", "Sports results"]
    related = related[epoch % 4 :] + related[: epoch % 4]
    furniture = (
        f"<div class=ad-slot><img src=/ad.png alt=''>Buy shoes #{epoch * 7}</div>"
        f"<aside class=related><ul>{''.join(f'<li>{r}</li>' for r in related)}</ul></aside>"
        f"<div id=cookie-banner>We use cookies ({epoch})</div>"
        f"<p class=meta>Updated {epoch + 2}h ago · {1200 + epoch * 31} views · 12:{10 + epoch}"
        f"</p><input type=hidden name=csrf value=a9f{epoch}c0ffee1234deadbeef{epoch}>"
    )
    if epoch >= 2:  # a redesign: other tags and classes, the same words
        return doc(
            f"<main class=v2><div class=headline>Security alert</div><section><span>"
            f"{ARTICLE}</span></section></main>{furniture}",
            "<title>Security alert</title>",
        )
    return article(ARTICLE, furniture)


def page(path: str, epoch: int) -> tuple[int, str, bytes, dict[str, str]]:
    html = "text/html; charset=utf-8"
    if path == "/":
        return 200, html, doc("<h1>Embassy home</h1><p>Welcome to the embassy website.</p>"), {}
    if path == "/noise":
        return 200, html, noise(epoch), {}
    if path == "/word":
        text = ARTICLE if epoch == 0 else ARTICLE.replace("immediately", "now")
        return 200, html, article(text), {}
    if path == "/number":
        return 200, html, article(f"The blast killed {13 if epoch == 0 else 14} people."), {}
    if path == "/correction":
        extra = " Correction: an earlier version misstated the gate." if epoch >= 1 else ""
        return 200, html, article(ARTICLE + extra), {}
    if path == "/xhr":
        return (
            200,
            html,
            doc(
                "<article><h1>Status</h1><p id=t>loading</p></article><script>"
                "fetch('/xhr.json').then(r=>r.json()).then(d=>{"
                "document.getElementById('t').textContent=d.text})</script>"
            ),
            {},
        )
    if path == "/xhr.json":
        text = "Gates closed." if epoch == 0 else "Gates open again."
        return 200, "application/json", f'{{"text": "{text}"}}'.encode(), {}
    if path == "/deleted":
        return (404, html, doc(NOT_FOUND), {}) if epoch == 1 else (200, html, article(ARTICLE), {})
    if path == "/soft":
        return 200, html, doc(NOT_FOUND) if epoch == 1 else article(ARTICLE), {}
    if path == "/to-home":
        return (
            (302, html, b"", {"Location": "/"}) if epoch == 1 else (200, html, article(ARTICLE), {})
        )
    if path == "/moved":
        return (
            (301, html, b"", {"Location": "/moved-here"})
            if epoch >= 1
            else (200, html, article(ARTICLE), {})
        )
    if path == "/moved-here":
        return 200, html, article(ARTICLE), {}
    if path in ("/flaky", "/slow", "/loop"):
        if epoch == 1:
            if path == "/flaky":
                return 503, html, doc("<h1>Service unavailable</h1>"), {"Retry-After": "1"}
            if path == "/loop":
                return 302, html, b"", {"Location": "/loop-b"}
            return -1, html, b"", {}  # /slow: never answers within the page timeout
        return 200, html, article(ARTICLE), {}
    if path == "/loop-b":
        return 302, html, b"", {"Location": "/loop"}
    if path == "/latin1":
        word = "immédiatement" if epoch < 2 else "rapidement"
        body = (
            f"<!DOCTYPE html><html><head><meta charset=iso-8859-1><title>Alerte</title>"
            f"</head><body><article><h1>Alerte</h1><p>Quittez la zone {word}, "
            f"dit l'ambassade.</p></article></body></html>"
        ).encode("latin-1")
        return 200, "text/html; charset=iso-8859-1", body, {}
    if path == "/doc.pdf":
        text = "Embassy alert version one" if epoch == 0 else "Embassy alert version two"
        return 200, "application/pdf", make_pdf(text), {}
    if path == "/ab":
        variant = "Leave by the north gate." if epoch % 2 == 0 else "Leave by the east gate."
        return 200, html, article(ARTICLE + " " + variant), {}
    if path == "/passage":
        text = (
            ARTICLE
            if epoch == 0
            else ARTICLE.replace(
                "US citizens who are at the Abbey Gate should leave immediately. ", ""
            )
        )
        return 200, html, article(text), {}
    return 200, html, doc(NOT_FOUND), {}


class ChangingSite:
    def __init__(self) -> None:
        self.epoch = 0
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()  # frees the handlers of never-answering pages
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                site.hits[path] += 1
                status, ctype, body, headers = page(path, site.epoch)
                if status < 0:
                    site.release.wait(60)
                    return
                respond(self, status, ctype, body, headers)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
