"""Find the URLs in plain text: scheme URLs, scheme-less ones, URLs broken across lines.

Text extracted from PDFs and DOCX files is the main input, so the rules are for messy text:
scheme-less links (``pic.twitter.com/x``), URLs wrapped in punctuation or parentheses, and
URLs that extraction broke across two lines. A cheap trigger regex picks the few tokens that
may hold a URL and the full pattern, with only bounded nesting, runs on those: a 50 MB file
or a pathological line stays linear. The citing passage around each URL is
found by ``crawler.passages.passage_around``.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass

# Every two-letter country-code TLD, and the generic TLDs that citations use.
_CCTLDS = """
ac ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bm bn bo br bs
bt bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee
eg er es et eu fi fj fk fm fo fr ga gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm
hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb
lc li lk lr ls lt lu lv ly ma mc md me mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz
na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs
ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st su sv sx sy sz tc td tf tg th tj tk
tl tm tn to tr tt tv tw tz ua ug uk us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw
"""
_GENERIC_TLDS = """
com org net edu gov mil int info biz name pro mobi asia aero coop museum jobs travel xyz app
dev online site website blog news media press tech cloud store shop live today world wiki
page social network link club space life digital agency global foundation institute
"""
KNOWN_TLDS = frozenset((_CCTLDS + _GENERIC_TLDS).split())
# ccTLDs that prose uses far more often as file extensions ("setup.py/", "README.md/").
_FILE_LIKE_TLDS = frozenset({"py", "md"})

# Characters a URL can contain as it appears in text: not whitespace, angle brackets,
# quotation marks, an ellipsis (a truncated display URL ends there) or decoding debris.
_URL_CHAR = (
    '[^\\s<>"`\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e\u2026\ufffd\u200b-\u200d\u2060\ufeff]'
)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_CANDIDATE = re.compile(
    rf"""
    (?P<skip>(?<![\w.+-])(?:mailto|javascript|vbscript|tel|data|file):(?!https?://)\S*)
  | (?P<scheme>https?://(?=[\w\[]){_URL_CHAR}+)
  | (?P<bare>(?<![\w@.:/%+~=&?\#-])(?P<host>(?:{_LABEL}\.)+(?P<tld>[a-z]{{2,24}}))
        (?:(?P<path>/{_URL_CHAR}*)|(?![\w@-]|\.[a-z0-9])))
    """,
    re.IGNORECASE | re.VERBOSE,
)

_TRIGGER = re.compile(r"\.[a-z]{2}|://", re.IGNORECASE)
_NON_SPACE = re.compile(r"\S*")
_LOOK_BACK = 2048  # longest scheme or host looked back for from a trigger

_TRAILING = frozenset(".,;:!?'\"\u201d\u2019)]}>*")
_OPENER = {")": "(", "]": "[", "}": "{"}

# Line-break repair: the next line must start with URL characters (no indent), and the
# join happens only when the URL so far ends where a URL plausibly continues.
_LINE_BREAK = re.compile(r"\r?\n")
_CONTINUATION = re.compile(rf"[a-z0-9/%_.~?=&#+-]{_URL_CHAR}*", re.IGNORECASE)
_BREAK_CHARS = frozenset("/-_?=&%#~+")
_URLISH = re.compile(r"[/_?=&%#~+-]|\.[a-z]|[a-z][0-9]|[0-9][a-z]", re.IGNORECASE)
_NEW_URL = re.compile(r"https?://|www\d{0,3}\.", re.IGNORECASE)


@dataclass(frozen=True)
class FoundURL:
    """A URL as it appears in text; ``start``/``end`` span it, line breaks included."""

    url: str  # line breaks removed; a scheme-less URL stays scheme-less
    start: int
    end: int


def find_urls(text: str) -> list[FoundURL]:
    """Every http(s) or scheme-less web URL in ``text``, in order of appearance."""
    found: list[FoundURL] = []
    resume = 0
    # A cheap trigger finds the few tokens that may hold a URL; the full pattern runs only
    # on those, which keeps plain prose fast.
    for hit in _TRIGGER.finditer(text):
        if hit.start() < resume:
            continue
        token_start = _token_start(text, hit.start(), resume)
        token_end = _NON_SPACE.match(text, hit.start()).end()
        for match in _CANDIDATE.finditer(text, token_start, token_end):
            if match.start() < resume or match.group("skip") is not None:
                resume = max(resume, match.end())
                continue
            if match.group("bare") is not None and not _bare_host_ok(match):
                continue
            url_found = _extend_and_trim(text, match)
            if url_found is not None:
                found.append(url_found)
                resume = url_found.end
        resume = max(resume, token_end)
    return found


def _token_start(text: str, pos: int, floor: int) -> int:
    """Start of the whitespace-delimited token holding ``pos`` (looking back a bounded way)."""
    head = text[max(floor, pos - _LOOK_BACK) : pos]
    if not head or head[-1].isspace():
        return pos
    return pos - len(head.rsplit(None, 1)[-1])


def line_of(text: str, offset: int) -> int:
    """The 1-based line number of ``offset`` in ``text``."""
    return bisect.bisect_right(_line_starts(text), offset) + 1


@functools.lru_cache(maxsize=2)
def _line_starts(text: str) -> list[int]:
    # Cached: a reader asks for the line of every URL in the same (possibly huge) text.
    return [m.end() for m in re.finditer("\n", text)]


def _bare_host_ok(match: re.Match[str]) -> bool:
    host, tld, path = match.group("host"), match.group("tld"), match.group("path")
    if tld.lower() not in KNOWN_TLDS or len(host) > 253:
        return False
    if host[:4].lower() == "www.":
        return True
    if not path:  # "example.org" alone is as likely a name as a link
        return False
    if not tld.islower():  # "ASP.NET/Core", "Socket.IO/": product names, not hosts
        return False
    return not (host.count(".") == 1 and tld in _FILE_LIKE_TLDS)


def _extend_and_trim(text: str, match: re.Match[str]) -> FoundURL | None:
    """Join continuation lines, then drop trailing punctuation."""
    pieces = [(match.start(), match.group())]
    url = match.group()
    if match.group("scheme") is not None:
        has_path = "/" in url[url.index("://") + 3 :]
    else:
        has_path = match.group("path") is not None
    while token := _continuation(text, url, pieces[-1][0] + len(pieces[-1][1]), has_path):
        pieces.append(token)
        url += token[1]
    keep = _strip_trailing(url)
    last_start, last_piece = pieces[-1]
    end = last_start + len(last_piece) - (len(url) - keep)
    url = url[:keep]
    if match.group("scheme") is not None and len(url) <= url.index("://") + 3:
        return None
    return FoundURL(url, match.start(), end)


def _strip_trailing(url: str) -> int:
    """Length of ``url`` without trailing punctuation.

    A closing bracket that balances an opening one inside the URL stays, so
    ``.../wiki/Hezbollah_(disambiguation)`` keeps its ``)`` even when the whole URL is
    wrapped in parentheses. Counts are updated as we strip, so this is linear.
    """
    closed = {c: url.count(c) for c in _OPENER}
    opened = {c: url.count(c) for c in _OPENER.values()}
    n = len(url)
    while n and url[n - 1] in _TRAILING:
        char = url[n - 1]
        if char in _OPENER:
            if closed[char] <= opened[_OPENER[char]]:
                break
            closed[char] -= 1
        n -= 1
    return n


def _continuation(text: str, url: str, end: int, has_path: bool) -> tuple[int, str] | None:
    """The next line's start, when it continues ``url`` that ends the current line."""
    newline = _LINE_BREAK.match(text, end)
    if newline is None:
        return None
    token_match = _CONTINUATION.match(text, newline.end())
    if token_match is None:
        return None
    token = token_match.group()
    core = token[: _strip_trailing(token)]
    if not core or not _URLISH.search(core) or _starts_new_url(token):
        return None
    line_end = text.find("\n", token_match.end())
    rest = text[token_match.end() : line_end if line_end >= 0 else len(text)]
    whole_line = not rest.strip()
    last = url[-1]
    # "/", "-", "?", "=" ... rarely end a URL in prose; a break after a letter or digit is
    # trusted only when the continuation is the whole next line (no sentence follows).
    if last in _BREAK_CHARS or (last.isalnum() and whole_line and has_path):
        return newline.end(), token
    return None


def _starts_new_url(token: str) -> bool:
    if _NEW_URL.match(token):
        return True
    match = _CANDIDATE.match(token)
    return bool(match and match.group("bare") and match.group("path") and _bare_host_ok(match))
