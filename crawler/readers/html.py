"""Citations in an HTML document: the links in its main content.

Only links in the article's main content are citations. Scripts, styles, templates and
``noscript`` are removed. Boilerplate is set aside: ``nav``, ``footer``, ``aside``, a
``form`` without paragraphs, a ``header`` outside an ``article``, anything with role
navigation, banner, contentinfo or complementary, and anything whose class or id names a
navigation, menu, breadcrumb, header, footer, sidebar, related/recommended/more-stories,
share/social, comment, newsletter, promo, advert or cookie box (an element that contains
the article is never set aside for its class). The main content is then the single
``<article>``, else the single ``<main>`` or ``role=main`` element, else the element whose
paragraphs hold the most text, else ``body``.

In it, each ``a[href]`` that is an http(s) URL is a citation; relative links are resolved
against ``<base href>``, else the canonical URL (``link rel=canonical`` or ``og:url``), and
skipped when there is none; mailto/javascript/tel links and bare ``#fragments`` are skipped.
An embedded tweet (``blockquote.twitter-tweet``) is one citation: its last link, the tweet,
with the quoted tweet text as passage (the links inside the tweet text are not cited by the
document). A link's location is a short CSS path, its anchor the link text, its passage the
sentence around it in its block (p, li, blockquote, td, figcaption...).
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import lxml.etree
import lxml.html

from crawler.passages import passage_around
from crawler.readers import DocLink, UnreadableDocument

PASSAGE_CHARS = 600

_DROP_TAGS = ("script", "style", "template", "noscript")
_BOILERPLATE_TAGS = {"nav", "footer", "aside"}
_BOILERPLATE_ROLES = {"navigation", "banner", "contentinfo", "complementary"}
# A class or id token that names a boilerplate box: the word at the start of the token or
# after a - or _ ("main-nav", "site_footer", "navbar", "ad-slot"), so "header" does not
# catch "subheader" and "ad-" does not catch "load-more".
_BOILERPLATE_NAME = re.compile(
    r"(?:^|[-_])(?:nav|menu|breadcrumb|footer|header|sidebar|related|recommend|more-?stories"
    r"|share|sharing|social|comment(?!ary)|newsletter|promo|advert|ad-|ads?(?:$|[-_])|cookie)",
    re.IGNORECASE,
)
_MAIN_TAGS = ("article", "main", "body")
_BLOCK_TAGS = {
    "p", "li", "blockquote", "td", "th", "figcaption", "dd", "dt", "caption",
    "h1", "h2", "h3", "h4", "h5", "h6",
}  # fmt: skip
_INLINE_TAGS = {
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "del", "dfn", "em", "font",
    "i", "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup",
    "time", "u", "var",
}  # fmt: skip
_SPACE = re.compile(r"\s+")
_CSS_ID = re.compile(r"^[A-Za-z][\w-]*$")


def read(data: bytes, name: str) -> list[DocLink]:
    try:
        tree = lxml.html.document_fromstring(data)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise UnreadableDocument(f"{name}: cannot read HTML document: {exc}") from exc
    base = _base_url(tree)
    for bad in tree.xpath("|".join(f"//{tag}" for tag in _DROP_TAGS)):
        bad.drop_tree()
    excluded = _boilerplate(tree)
    root = _main_root(tree, excluded)
    return _Links(root, excluded, base).collect()


def _base_url(tree: lxml.html.HtmlElement) -> str | None:
    """``<base href>``, else the canonical URL: what relative links are relative to."""
    candidates = [
        *tree.xpath("//base/@href"),
        *tree.xpath("//link[contains(concat(' ', @rel, ' '), ' canonical ')]/@href"),
        *tree.xpath("//meta[@property='og:url']/@content"),
    ]
    for href in candidates:
        href = href.strip()
        if urlsplit(href).scheme.lower() in ("http", "https") and urlsplit(href).netloc:
            return href
    return None


def _boilerplate(tree: lxml.html.HtmlElement) -> set[lxml.html.HtmlElement]:
    """The elements whose links are not citations (their subtrees are skipped too)."""
    # A wrapper that holds the content ("layout-with-sidebar") stays: the holders are main
    # elements and the longest article (not every article: related boxes hold article cards).
    mains = tree.xpath("//main|//*[@role='main']")
    articles = list(tree.iter("article"))
    if articles:
        mains.append(max(articles, key=lambda el: len(el.text_content())))
    holders: set[lxml.html.HtmlElement] = set()
    for main in mains:
        holders.update(main.iterancestors())
        holders.add(main)
    return {el for el in tree.iter(lxml.etree.Element) if _is_boilerplate(el, holders)}


def _is_boilerplate(el: lxml.html.HtmlElement, holders: set) -> bool:
    tag = el.tag
    role = (el.get("role") or "").strip().lower()
    if tag in _BOILERPLATE_TAGS or role in _BOILERPLATE_ROLES:
        return True
    if el in holders or tag in ("html", "body"):
        return False
    if tag == "header":
        return not _inside(el, "article")
    if tag == "form":  # a search or signup box; ASP.NET pages wrap the whole page in a form
        return el.find(".//p") is None
    return _boilerplate_name(el)


def _boilerplate_name(el: lxml.html.HtmlElement) -> bool:
    tokens = (el.get("class") or "").split() + (el.get("id") or "").split()
    return any(_BOILERPLATE_NAME.search(token) for token in tokens)


def _inside(el: lxml.html.HtmlElement, tag: str) -> bool:
    return any(parent.tag == tag for parent in el.iterancestors())


def _is_excluded(el: lxml.html.HtmlElement, excluded: set, stop=None) -> bool:
    """True when ``el`` or an ancestor (up to ``stop``) is boilerplate."""
    node = el
    while node is not None and node is not stop:
        if node in excluded:
            return True
        node = node.getparent()
    return stop is not None and stop in excluded


def _main_root(tree: lxml.html.HtmlElement, excluded: set) -> lxml.html.HtmlElement:
    """The single article, else the single main, else the densest paragraph holder."""
    articles = [
        el
        for el in tree.iter("article")
        if not _inside(el, "article") and not _is_excluded(el, excluded)
    ]
    if len(articles) == 1:
        return articles[0]
    mains = [el for el in tree.xpath("//main|//*[@role='main']") if not _is_excluded(el, excluded)]
    mains = [el for el in mains if not any(other in mains for other in el.iterancestors())]
    if len(mains) == 1:
        return mains[0]
    densest = _densest(tree, excluded)
    if densest is not None:
        return densest
    body = tree.find("body")
    return body if body is not None else tree


def _densest(tree: lxml.html.HtmlElement, excluded: set) -> lxml.html.HtmlElement | None:
    """Readability's choice: a paragraph's text counts fully for its parent, half for the
    grandparent, so a container of several sections beats any one section."""
    scores: dict[lxml.html.HtmlElement, float] = {}
    for p in tree.iter("p"):
        if _is_excluded(p, excluded):
            continue
        size = len(_SPACE.sub(" ", p.text_content()).strip())
        parent = p.getparent()
        if parent is None or not size:
            continue
        scores[parent] = scores.get(parent, 0) + size
        grand = parent.getparent()
        if grand is not None:
            scores[grand] = scores.get(grand, 0) + size / 2
    return max(scores, key=scores.__getitem__) if scores else None


class _Links:
    """Walks the main content once; caches block texts and sibling positions so a
    document with thousands of links in one paragraph stays linear."""

    def __init__(self, root: lxml.html.HtmlElement, excluded: set, base: str | None):
        self.root = root
        self.excluded = excluded
        self.base = base
        self.blocks: dict = {}
        self.positions: dict = {}

    def collect(self) -> list[DocLink]:
        links = []
        for a in self.root.iter("a"):
            if a.get("href") is None or _is_excluded(a, self.excluded, stop=self.root):
                continue
            tweet = _tweet_of(a)
            if tweet is not None:
                if a is tweet.xpath(".//a[@href]")[-1]:
                    links.extend(self._tweet(a, tweet))
                continue
            links.extend(self._link(a))
        return links

    def _link(self, a: lxml.html.HtmlElement) -> list[DocLink]:
        url = self._url(a.get("href", ""))
        if url is None:
            return []
        text, spans = self._block_text(_block_of(a))
        start, end = spans.get(a, (0, 0))
        anchor = text[start:end] or None
        passage = _passage(text, start, end) if text else None
        return [DocLink(url, f"css: {self._css_path(a)}", anchor, passage)]

    def _tweet(self, a: lxml.html.HtmlElement, tweet: lxml.html.HtmlElement) -> list[DocLink]:
        url = self._url(a.get("href", ""))
        if url is None:
            return []
        quoted = " ".join(_collapse(p.text_content()) for p in tweet.iter("p"))
        anchor = _collapse(a.text_content()) or None
        return [DocLink(url, f"css: {self._css_path(a)}", anchor, quoted[:PASSAGE_CHARS] or None)]

    def _url(self, href: str) -> str | None:
        # Browsers drop surrounding whitespace and any tab or newline inside an href.
        href = re.sub(r"[\t\n\r]", "", href).strip()
        if not href or href.startswith("#"):
            return None
        scheme = urlsplit(href).scheme.lower()
        if scheme in ("http", "https"):
            return href
        if scheme:  # mailto:, javascript:, tel:, data:, ftp: ...
            return None
        if href.startswith("//"):  # protocol-relative: the host is known, https is assumed
            return urljoin(self.base or "https:", href)
        return urljoin(self.base, href) if self.base else None

    def _css_path(self, el: lxml.html.HtmlElement) -> str:
        """``article > p:nth-of-type(3) > a:nth-of-type(1)``: from the nearest ancestor
        with an id, or the main root when it is an article/main/body, or body."""
        parts = []
        node = el
        while node is not None:
            ident = node.get("id") or ""
            if node is not el and _CSS_ID.match(ident):
                parts.append(f"{node.tag}#{ident}")
                break
            if (node is self.root and node.tag in _MAIN_TAGS) or node.tag in ("body", "html"):
                parts.append(node.tag)
                break
            parts.append(f"{node.tag}:nth-of-type({self._position(node)})")
            node = node.getparent()
        return " > ".join(reversed(parts))

    def _position(self, el: lxml.html.HtmlElement) -> int:
        parent = el.getparent()
        if parent is None:
            return 1
        if parent not in self.positions:
            counts: dict[str, int] = {}
            table = {}
            for child in parent:
                if isinstance(child.tag, str):
                    counts[child.tag] = counts.get(child.tag, 0) + 1
                    table[child] = counts[child.tag]
            self.positions[parent] = table
        return self.positions[parent][el]

    def _block_text(self, block: lxml.html.HtmlElement) -> tuple[str, dict]:
        if block not in self.blocks:
            self.blocks[block] = _flatten(block, self.excluded)
        return self.blocks[block]


def _tweet_of(a: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    for parent in a.iterancestors("blockquote"):
        if "twitter-tweet" in (parent.get("class") or "").split():
            return parent
    return None


def _block_of(a: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """The enclosing paragraph-like block; else the nearest non-inline ancestor."""
    fallback = None
    for parent in a.iterancestors():
        if parent.tag in _BLOCK_TAGS:
            return parent
        if fallback is None and parent.tag not in _INLINE_TAGS:
            fallback = parent
    return fallback if fallback is not None else a


def _passage(text: str, start: int, end: int) -> str | None:
    # A window around the link: a paragraph of thousands of links must not be rescanned
    # whole for each of them.
    low = max(0, start - 2 * PASSAGE_CHARS)
    window = text[low : end + 2 * PASSAGE_CHARS]
    return passage_around(window, start - low, end - low, PASSAGE_CHARS)


def _collapse(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _flatten(block: lxml.html.HtmlElement, excluded: set) -> tuple[str, dict]:
    """The block's text with whitespace collapsed, and each link's (start, end) in it."""
    parts: list[str] = []
    length = 0
    after_space = True  # drops leading spaces, and doubles where pieces meet
    starts: dict = {}
    spans: dict = {}

    def add(piece: str) -> None:
        nonlocal length, after_space
        piece = _SPACE.sub(" ", piece)
        if after_space:
            piece = piece.lstrip(" ")
        if piece:
            parts.append(piece)
            length += len(piece)
            after_space = piece.endswith(" ")

    # An explicit stack: deeply nested markup must not hit the recursion limit.
    stack: list[tuple[lxml.html.HtmlElement, bool]] = [(block, False)]
    while stack:
        el, closing = stack.pop()
        if closing:
            if el in starts:
                spans[el] = (starts[el], length)
            if el is not block:
                add(el.tail or "")
            continue
        if not isinstance(el.tag, str) or (el is not block and el in excluded):
            if el is not block:
                add(el.tail or "")
            continue
        if el is not block and (el.tag == "br" or el.tag not in _INLINE_TAGS):
            add(" ")  # <br>, or a nested block: words on either side stay apart
        if el.tag == "a":
            starts[el] = length
        add(el.text or "")
        stack.append((el, True))
        stack.extend((child, False) for child in reversed(el))
    text = "".join(parts)
    # A span may include the one space that separated it from the text before it.
    for el, (start, end) in spans.items():
        end = min(end, len(text))
        while start < end and text[start] == " ":
            start += 1
        while end > start and text[end - 1] == " ":
            end -= 1
        spans[el] = (start, end)
    return text.rstrip(), spans
