"""The citing passage around a URL or link text: the sentence, or the quotation, that cites it.

Documents cite in prose ("As the embassy warned, ... (URL)"), with a URL alone on a line
after a paragraph, or under an embedded tweet ("text — Name (@handle) date"). The passage
is what a careful reader would call the citing text; see ``passage_around``.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass

from crawler.urlfind import find_urls

# Where another URL starts (a passage never runs into the next citation).
_NEW_URL = re.compile(r"https?://|www\d{0,3}\.", re.IGNORECASE)

_WINDOW = 3000  # how far to look for a sentence's ends; bounds the work per URL
# A sentence ends at . ! ? (and closing quotes or brackets) before whitespace, or at a
# blank line. A lowercase word after it means an abbreviation ("e.g. the"), unless a URL.
_BOUNDARY = re.compile(
    r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s)(?!\s+(?!https?://|www\.)[a-z])|\n[ \t]*\r?\n"
)
_BLANK_LINE = re.compile(r"\n[ \t]*\r?\n")
_WORD_END = re.compile(r"(\w+)$")
_NEXT_CHAR = re.compile(r"\s*(\S)")
_ABBREVIATION_WORDS = """mr mrs ms dr prof gen col capt lt sgt sen rep gov st jr sr vs etc no
fig vol pp ed eds inc ltd co corp jan feb mar apr jun jul aug sep sept oct nov dec"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_ENDS_SENTENCE = re.compile(r"[.!?:][\"'\u201d\u2019)\]]*\s*$")
_LETTERS = re.compile(r"[^\W\d_]{2,}")
_PAGE_NUMBER = re.compile(r"\s*(?:page\s+)?\d+(?:\s*(?:of|/)\s*\d+)?\s*$", re.IGNORECASE)
# The attribution line of an embedded tweet: "— Alex Rubinstein (@RealAlexRubi) August 28,
# 2021" (the date in any language, so only its year is required). The tweet's text is the
# paragraph above it.
_ATTRIBUTION = re.compile(
    r"^[ \t]*[\u2014\u2013-]{1,2}[ \t]*[^\n(]{1,80}\(@(?P<handle>\w{1,15})\)"
    r"[^\n]{0,60}?\b(?:19|20)\d\d\b[^\n]*",
    re.MULTILINE,
)
_TWEET_TEXT_MAX = 1500
_STATUS = re.compile(
    r"(?:https?://)?(?:(?:www|mobile)\.)?(?:twitter|x)\.com/(\w{1,15})/status(?:es)?/\d",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")
# A short label that introduces a URL instead of citing it in a sentence of its own.
_LABEL = re.compile(
    r"\W*(?:(?:source|sources|see|via|link|from|at|here|more|read more|full text)\b\W*"
    r"|\w+\s*:\s*)",
    re.IGNORECASE,
)
_EMPTY_BRACKETS = re.compile(r"[(\[<]\s*[)\]>]")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,;:!?)\]])")
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "gov", "ac", "edu"})


@dataclass(frozen=True)
class _Tweet:
    start: int  # first character of the quoted text
    text_end: int
    end: int  # end of the attribution line
    handle: str


def passage_around(text: str, start: int, end: int, max_chars: int = 600) -> str | None:
    """The sentence or quotation citing the URL at ``text[start:end]``, or None.

    Whitespace is collapsed and the URL itself left out. A URL in or beside an embedded
    tweet gets the tweet's text; a URL alone on its line, as PDF extraction leaves link
    targets, gets the passage it most likely belongs to (see ``_detached``). A span that
    is link text rather than a URL (an HTML or PDF anchor) stays in its sentence.
    """
    is_url = _is_url_text(text[start:end])
    kept = "" if is_url else text[start:end]
    alone = is_url and _alone_on_line(text, start, end)
    tweet = _tweet_for(text, start, end, alone)
    if tweet is not None:
        if tweet.start <= start < tweet.text_end:
            return _fit(text[tweet.start : start] + kept, text[end : tweet.text_end], max_chars)
        return _fit(text[tweet.start : tweet.text_end], "", max_chars)
    if alone:
        return _detached(text, start, end, max_chars)
    before = text[_sentence_start(text, start) : start]
    after = text[end : _sentence_end(text, end)]
    if is_url and _LABEL.fullmatch(before):
        # "... should leave immediately.” (source: URL)": the label cites the sentence before.
        sentence_start = start - len(before)
        previous = text[_sentence_start(text, sentence_start) : sentence_start]
        if _is_prose(previous):
            return _fit(previous, "", max_chars)
    if is_url and not _is_prose(before) and not _is_prose(after):
        # "Smith (2020). Title of the work. https://..." - the URL follows the sentence it
        # belongs to; at a paragraph's start it is detached from its sentence.
        sentence_start = start - len(before)
        if text[sentence_start - 1 : sentence_start] not in ("", "\n"):
            previous = text[_sentence_start(text, sentence_start) : sentence_start]
            if _is_prose(previous):
                return _fit(previous, "", max_chars)
        return _detached(text, start, end, max_chars)
    return _fit(before + kept, after, max_chars)


def _is_url_text(span: str) -> bool:
    found = find_urls(span)
    return len(found) == 1 and not span[: found[0].start].strip() and len(span) - found[0].end < 2


def _sentence_start(text: str, pos: int) -> int:
    """Start of the sentence that runs up to ``pos``."""
    # Nearest boundary first, in a short window before the full one: most sentences are short.
    for reach in (400, _WINDOW):
        floor = max(0, pos - reach)
        for match in reversed(list(_BOUNDARY.finditer(text, floor, pos))):
            if _is_boundary(text, match):
                return match.end()
        if floor == 0:
            break
    return max(0, pos - _WINDOW)


def _sentence_end(text: str, pos: int) -> int:
    """End of the sentence that continues from ``pos``."""
    ceiling = min(len(text), pos + _WINDOW)
    for match in _BOUNDARY.finditer(text, pos, ceiling):
        if _is_boundary(text, match):
            return match.start() if match.group()[0] == "\n" else match.end()
    return ceiling


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    if match.group()[0] == "\n":
        return True
    following = _NEXT_CHAR.match(text, match.end())
    if (  # "e.g. the", "U.S. forces"; but a URL may follow a sentence
        following and following.group(1).islower() and not _NEW_URL.match(text, following.start(1))
    ):
        return False
    if match.group()[0] != ".":
        return True
    word = _WORD_END.search(text, max(0, match.start() - 12), match.start())
    if word is None:
        return True
    word_text = word.group(1)  # "Gen. Nicholson", "J. Smith" do not end a sentence
    return word_text.lower() not in _ABBREVIATIONS and not (
        len(word_text) == 1 and word_text.isupper()
    )


def _is_prose(fragment: str) -> bool:
    """Whether ``fragment`` has words once URLs and page furniture are taken out."""
    if _PAGE_NUMBER.match(fragment):
        return False
    kept, last = [], 0
    for found in find_urls(fragment):
        kept.append(fragment[last : found.start])
        last = found.end
    kept.append(fragment[last:])
    return bool(_LETTERS.search(" ".join(kept)))


def _alone_on_line(text: str, start: int, end: int) -> bool:
    """Whether the URL's line holds nothing else but other URLs or list markers."""
    line_start = text.rfind("\n", max(0, start - 300), start) + 1
    line_end = text.find("\n", end, end + 300)
    if (line_start == 0 and start > 300) or (line_end < 0 and len(text) - end > 300):
        return False  # a long line around it: prose
    line_end = len(text) if line_end < 0 else line_end
    return not _is_prose(text[line_start:start]) and not _is_prose(text[end:line_end])


def _fit(before: str, after: str, max_chars: int) -> str | None:
    """``before`` + ``after`` with whitespace collapsed, cut to ``max_chars`` around the gap."""
    # A space where the URL was cut out; none inside a word that link text splits.
    gap = " " if before[-1:].isspace() or after[:1].isspace() else ""
    reach = 4 * max_chars  # enough even for text full of runs of spaces
    before, after = _squash(before[-reach:]), _squash(after[:reach])
    room = max_chars - len(gap)
    if len(before) + len(after) > room:
        keep_after = min(len(after), max(room // 2, room - len(before)))
        keep_before = room - keep_after
        if len(before) > keep_before:
            before = "…" + before[len(before) - keep_before + 1 :].partition(" ")[2]
        if len(after) > keep_after:
            after = after[: keep_after - 1].rpartition(" ")[0] + "…"
    passage = _EMPTY_BRACKETS.sub("", f"{before}{gap}{after}")  # the URL was all they held
    passage = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _SPACES.sub(" ", passage)).strip()
    return passage if _LETTERS.search(passage) else None


def _squash(fragment: str) -> str:
    # U+FFFD is decoding debris (an emoji lost in PDF extraction), never text.
    return _SPACES.sub(" ", fragment.replace("\ufffd", " ")).strip()


def _detached(text: str, start: int, end: int, max_chars: int) -> str | None:
    """The passage for a URL alone on its line, cut off from its sentence.

    In order: the lead-in sentence right above it ("The report is here:"); the nearest
    sentence before it that names the URL's site (edition.cnn.com: "CNN's interview"); the
    last sentence before it, rejoined with its continuation when the URL lines and page
    furniture interrupt it; else None.
    """
    prose_end, blank_between = _prose_before(text, start)
    if prose_end is not None and not blank_between and text[prose_end - 1] == ":":
        return _fit(text[_sentence_start(text, prose_end) : prose_end], "", max_chars)
    named = _sentence_naming_site(text, start, re.sub(r"\s", "", text[start:end]))
    if named is not None:
        return _fit(named, "", max_chars)
    if prose_end is None:
        return None
    before = text[_sentence_start(text, prose_end) : prose_end]
    after = ""
    if not _ENDS_SENTENCE.search(before):
        resume = _prose_after(text, end)
        if resume is not None and text[resume].islower():
            after = " " + text[resume : _sentence_end(text, resume)]
    return _fit(before, after, max_chars)


def _lines_before(text: str, pos: int):
    """(start, end) of each line before the one holding ``pos``, nearest first."""
    floor = max(0, pos - _WINDOW)
    line_end = text.rfind("\n", floor, pos)
    while line_end > floor:
        line_start = max(floor, text.rfind("\n", floor, line_end) + 1)
        yield line_start, line_end
        line_end = line_start - 1


def _prose_before(text: str, pos: int) -> tuple[int | None, bool]:
    """End of the nearest prose line above ``pos``, and whether a blank line comes between."""
    blank = False
    for line_start, line_end in _lines_before(text, pos):
        line = text[line_start:line_end]
        if not line.strip():
            blank = True
        elif _is_prose(line):
            return line_start + len(line.rstrip()), blank
    return None, blank


def _prose_after(text: str, pos: int) -> int | None:
    """First character of the nearest prose line below ``pos``."""
    ceiling = min(len(text), pos + _WINDOW)
    line_start = text.find("\n", pos, ceiling) + 1
    while 0 < line_start < ceiling:
        line_end = text.find("\n", line_start, ceiling)
        line = text[line_start : line_end if line_end >= 0 else ceiling]
        if _is_prose(line):
            return line_start + len(line) - len(line.lstrip())
        line_start = line_end + 1
    return None


def _sentence_naming_site(text: str, pos: int, url: str) -> str | None:
    """The nearest sentence before ``pos`` that names the URL's site, capitalised."""
    name = _site_name(url)
    if name is None:
        return None
    pattern = re.compile(rf"(?<![\w./@-]){re.escape(name)}(?!\w)", re.IGNORECASE)
    mentions = [
        m for m in pattern.finditer(text, max(0, pos - _WINDOW), pos) if m.group()[0].isupper()
    ]
    if not mentions:
        return None
    mention = mentions[-1]
    return text[_sentence_start(text, mention.start()) : _sentence_end(text, mention.end())]


def _site_name(url: str) -> str | None:
    """The name a site goes by in prose: "cnn" for edition.cnn.com, "bbc" for bbc.co.uk."""
    host = re.sub(r"^[a-z]+://", "", url, flags=re.IGNORECASE)
    labels = re.split(r"[/?#:]", host, maxsplit=1)[0].lower().split(".")
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        labels = labels[:-1]
    name = labels[-2] if len(labels) >= 2 else ""
    return name if len(name) >= 3 and name.isalpha() and name != "www" else None


@functools.lru_cache(maxsize=2)
def _tweets(text: str) -> tuple[list[int], list[_Tweet], dict[str, list[_Tweet]]]:
    """Embedded tweets in ``text``: starts (for bisect), tweets, tweets by handle."""
    tweets: list[_Tweet] = []
    for match in _ATTRIBUTION.finditer(text):
        floor = max(tweets[-1].end if tweets else 0, match.start() - _TWEET_TEXT_MAX)
        text_end = floor + len(text[floor : match.start()].rstrip())
        start = floor
        for blank in _BLANK_LINE.finditer(text, floor, text_end):
            start = blank.end()
        while start < text_end and text[start].isspace():
            start += 1
        if start < text_end:
            tweets.append(_Tweet(start, text_end, match.end(), match.group("handle").lower()))
    by_handle: dict[str, list[_Tweet]] = {}
    for tweet in tweets:
        by_handle.setdefault(tweet.handle, []).append(tweet)
    return [t.start for t in tweets], tweets, by_handle


def _tweet_for(text: str, start: int, end: int, alone: bool) -> _Tweet | None:
    """The embedded tweet the URL at ``text[start:end]`` belongs to, if any."""
    starts, tweets, by_handle = _tweets(text)
    if not tweets:
        return None
    i = bisect.bisect_right(starts, start) - 1
    tweet = None
    if i >= 0 and (
        start < tweets[i].end  # in the quoted text or on the attribution line
        or (alone and _only_space_between(text, tweets[i].end, start))
    ):
        tweet = tweets[i]
    elif alone and i + 1 < len(tweets) and _only_space_between(text, end, tweets[i + 1].start):
        tweet = tweets[i + 1]
    elif alone and (status := _STATUS.match(re.sub(r"\s", "", text[start:end]))):
        # A status URL cut off from its embed (PDF link targets collect at a page's end):
        # the nearest tweet by the same account, preferring one above.
        same = by_handle.get(status.group(1).lower(), [])
        above = [t for t in same if t.end <= start]
        tweet = above[-1] if above else (same[0] if same else None)
    return tweet


def _only_space_between(text: str, a: int, b: int) -> bool:
    return 0 <= b - a < 200 and not text[a:b].strip()
