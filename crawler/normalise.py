"""What a reader sees, minus noise: the text that fingerprints and comparisons use.

Noise is what changes between two renderings of an unedited page: clocks, "2h ago",
like and view counters, nonces, cache-busting URL parameters, whitespace and character
width. Prose numbers, dates and money are never masked: "13 people" → "14 people" is an
edit. A number is a counter only when a counter word stands right next to it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from difflib import SequenceMatcher
from itertools import pairwise

# Placeholders between single angle quotes (U+2039, U+203A), e.g. TIME is '<time>'.
TIME, NUMBER, TOKEN = "\u2039time\u203a", "\u2039n\u203a", "\u2039token\u203a"

# Characters NFKC keeps that a reader never sees.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
_SPACES = re.compile(r"[^\S\n]+")

# Typographic quotes a renderer may or may not apply: a reader reads the same words.
_QUOTES = str.maketrans("\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f", "''''\"\"\"\"")

# Cache-busting query parameters: the value is masked, the parameter kept. Not "t" (a
# video's cited moment) nor "r".
_CACHE_BUST = re.compile(
    r"(?<=[?&;])(v|ver|_|_t|ts|cb|cachebust|cachebuster|nocache|rand|rnd|nonce|timestamp)"
    r"=[^&#\s\"'<>]*",
    re.I,
)

# Nonce-like runs: long, letters and digits mixed (hex, base64, base64url, UUIDs).
_TOKEN_RUN = re.compile(r"(?<![\w+/-])[A-Za-z0-9_+/-]{16,}={0,2}")
_HEX = re.compile(r"[0-9a-f-]+|[0-9A-F-]+")

# Clock times: 12:34, 12:34:56, 3:05 PM, 3 PM, 15h30, the time in 2021-08-26T04:00:00. A
# dot separator is not a clock ("3.05 percent").
_AMPM = r"(?:\s?[AaPp]\.?[Mm]\b\.?)"
_CLOCK = re.compile(
    rf"(?:(?<![\w:.])|(?<=\dT))(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?{_AMPM}?"
    rf"|\b(?:[01]?\d|2[0-3])h[0-5]\d\b"
    rf"|\b(?:1[0-2]|0?[1-9]){_AMPM}"
)

# Relative times.
_UNIT = (
    r"(?:s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?"
    r"|mos?|months?|y|yrs?|years?)"
)
_AGO = re.compile(rf"\b(?:\d+|an?|one|a few|few)\s*{_UNIT}\s+ago\b", re.I)
# X/Twitter style "2h", "45m": alone, or next to a "·"; never "5m people" or "$5m".
_COMPACT = re.compile(r"(?<![\w$€£¥.,])\d{1,3}[smhdw](?![\w.,])(?!\s+[a-z])")
_WORD_TIMES = re.compile(r"\b(?:yesterday|just now|moments ago)\b", re.I)

# Counters: a number next to a counter word ("1.2K likes", "Reposts 12"). Only the words
# of engagement bars: "52 votes" or "12,000 followers" in an article are facts. An amount
# or a percentage is never a counter ("shares 5% lower").
_COUNT = r"\d(?:[\d,.]*\d)?(?:\s?[KkMmBb]\b)?\+?"
_COUNTER_WORD = (
    r"(?:likes?|views?|shares?|comments?|retweets?|reposts?|repl(?:y|ies)|quotes?"
    r"|quote tweets?|bookmarks?|watching)"
)
_COUNT_BEFORE = re.compile(rf"(?<![\w.,$€£¥]){_COUNT}(?=\s*{_COUNTER_WORD}\b)", re.I)
_COUNT_AFTER = re.compile(
    rf"\b({_COUNTER_WORD}:?\s*)(?![$€£¥]){_COUNT}(?![\w.,]*\d)(?!\s*(?:%|percent))", re.I
)

# A line left with nothing but placeholders, counter words and punctuation is noise.
_NOISE_LEFT = re.compile(
    rf"\u2039(?:time|n|token)\u203a|\b{_COUNTER_WORD}\b|\b(?:updated|posted|edited|ago)\b", re.I
)
# fmt: off
_BOILERPLATE_LINES = frozenset((
    "advertisement", "sponsored", "ad", "share", "share this", "share this article",
    "copy link", "skip to content", "skip to main content", "show more", "read more",
))
# fmt: on


def _is_nonce(run: str) -> bool:
    core = run.rstrip("=")
    if len(core) < 16 or not any(c.isdigit() for c in core):
        return False
    if not any(c.isalpha() for c in core):
        return False  # a long pure number (a tweet id, a phone number) is content
    if _HEX.fullmatch(core):
        return True
    # Random text switches between lowercase, uppercase and digits about every other
    # character; words, slugs ("covid19-cases-2024"), article paths and CamelCase names
    # rarely do.
    kinds = ["d" if c.isdigit() else "u" if c.isupper() else "l" for c in core if c.isalnum()]
    switches = sum(a != b for a, b in pairwise(kinds))
    return switches >= 6 and switches >= 0.3 * len(kinds)


def _mask_tokens(line: str) -> str:
    return _TOKEN_RUN.sub(lambda m: TOKEN if _is_nonce(m.group()) else m.group(), line)


def _mask(line: str) -> str:
    line = _CACHE_BUST.sub(lambda m: f"{m.group(1)}={NUMBER}", line)
    line = _mask_tokens(line)
    line = _AGO.sub(TIME, line)
    line = _CLOCK.sub(TIME, line)
    line = _WORD_TIMES.sub(TIME, line)
    line = _COUNT_BEFORE.sub(NUMBER, line)
    line = _COUNT_AFTER.sub(lambda m: m.group(1) + NUMBER, line)
    line = _COMPACT.sub(TIME, line)
    return line


def _is_noise_line(line: str) -> bool:
    if line.casefold().strip(" .:!") in _BOILERPLATE_LINES:
        return True
    if "\u2039" not in line:
        return False
    return not any(c.isalnum() for c in _NOISE_LEFT.sub("", line))


def normalise(text: str) -> str:
    """NFKC, whitespace collapsed (one "\\n" between lines), noise masked or dropped."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).translate(_QUOTES)
    out = []
    for raw in text.splitlines():
        line = _SPACES.sub(" ", raw).strip()
        if not line:
            continue
        line = _SPACES.sub(" ", _mask(line)).strip()
        if line and not _is_noise_line(line):
            out.append(line)
    return "\n".join(out)


def fingerprint(text: str) -> str:
    """sha256 hex of the normalised text."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


# ---- comparing normalised texts -------------------------------------------------------

_BELOW_ONE = 0.9999  # unequal texts never score 1.0, however close
_SHORT = 20  # tokens: below this, word order carries too little for a sequence ratio


def similarity(a: str, b: str) -> float:
    """0..1 on normalised texts; 1.0 only when they are equal after normalisation."""
    na, nb = normalise(a), normalise(b)
    if na == nb:
        return 1.0
    ta, tb = na.split(), nb.split()
    if not ta or not tb:
        return 0.0
    if max(len(ta), len(tb)) < _SHORT:
        sa, sb = set(ta), set(tb)
        score = len(sa & sb) / len(sa | sb)
    else:
        score = SequenceMatcher(None, ta, tb, autojunk=False).ratio()
    return min(score, _BELOW_ONE)


_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
# A full stop after these is not a sentence end ("U.S. Embassy", "Gen. Smith").
_ABBREVIATION = re.compile(
    r"(?:\b[A-Z]|\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Gen|Sen|Rep|Gov|Lt|Col|Sgt|No|vs|etc|Jan|Feb|Mar"
    r"|Apr|Aug|Sep|Sept|Oct|Nov|Dec))\.$"
)
_DIGITS = re.compile(r"(?<![^\W\d])\d(?:[\d,.]*\d)?")  # not the 1 of "w1"


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    for line in text.split("\n"):
        pieces = _SENTENCE_END.split(line)
        merged = [pieces[0]]
        for piece in pieces[1:]:
            if _ABBREVIATION.search(merged[-1]):
                merged[-1] += " " + piece
            else:
                merged.append(piece)
        out.extend(p for p in merged if p)
    return out


_PAIR_REACH = 5  # sentences: how far from its proportional place an edited sentence is sought


def _pair(old: list[str], new: list[str]) -> list[tuple[str, str]]:
    """Edited pairs in a replaced block: each old sentence with its most similar new one.

    Candidates are sought near the sentence's proportional place, so a wholly rewritten
    page costs linear time, not old x new comparisons.
    """
    pairs, taken = [], set()
    for k, sentence in enumerate(old):
        centre = k * len(new) // max(1, len(old))
        best, score = None, 0.5
        matcher = SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(sentence.split())
        for j in range(max(0, centre - _PAIR_REACH), min(len(new), centre + _PAIR_REACH + 1)):
            if j in taken:
                continue
            matcher.set_seq1(new[j].split())
            if matcher.real_quick_ratio() < score or matcher.quick_ratio() < score:
                continue
            ratio = matcher.ratio()
            if ratio >= score:
                best, score = j, ratio
        if best is not None:
            taken.add(best)
            pairs.append((sentence, new[best]))
    return pairs


def change_summary(old: str, new: str) -> str:
    """A reason fragment such as "1 sentence edited, 1 added" for normalised texts."""
    a, b = _sentences(normalise(old)), _sentences(normalise(new))
    if a == b:
        return "no change" if normalise(old) == normalise(new) else "line breaks changed"
    edited = added = removed = numeric = 0
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        pairs = _pair(a[i1:i2], b[j1:j2])
        edited += len(pairs)
        removed += (i2 - i1) - len(pairs)
        added += (j2 - j1) - len(pairs)
        numeric += sum(_DIGITS.sub("#", x) == _DIGITS.sub("#", y) for x, y in pairs)
    counts = ((edited, "edited"), (added, "added"), (removed, "removed"))
    parts = [(n, verb) for n, verb in counts if n]
    first_n, first_verb = parts[0]
    words = [f"{first_n} sentence{'s' if first_n > 1 else ''} {first_verb}"]
    words += [f"{n} {verb}" for n, verb in parts[1:]]
    summary = ", ".join(words)
    if numeric:
        if numeric == edited:
            note = "a number changed" if numeric == 1 else "numbers changed"
        else:
            note = f"a number changed in {numeric}"
        summary = summary.replace(" edited", f" edited ({note})", 1)
    return summary


# Curly quotes and dashes (U+2018-U+201F, U+2010-U+2014) fold to ASCII.
_FOLD = str.maketrans(
    "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u2010\u2011\u2013\u2014",
    "''''\"\"\"\"----",
)
_EDGE_PUNCT = ".,;:!?\"'()[]{}«»…-"
PRESENT = 0.85  # token ratio from which a cited passage counts as still there


def _keys(text: str) -> list[str]:
    """Tokens for passage matching: case, quote style and edge punctuation ignored."""
    words = normalise(text).translate(_FOLD).casefold().split()
    return [k for k in (w.strip(_EDGE_PUNCT) for w in words) if k]


def _window_score(passage: list[str], region: list[str]) -> float:
    """Best 2M/(len(passage)+len(window)) over windows spanned by matching blocks."""
    blocks = SequenceMatcher(None, region, passage, autojunk=False).get_matching_blocks()
    blocks = [blk for blk in blocks if blk.size]
    best = 0.0
    for i, first in enumerate(blocks):
        matched = 0
        for last in blocks[i:]:
            matched += last.size
            span = last.a + last.size - first.a
            best = max(best, 2 * matched / (len(passage) + span))
    return best


def passage_present(passage: str, text: str) -> tuple[bool, float]:
    """Is the cited passage still in the text? (present, score 0..1).

    Case, quote style and punctuation at word edges do not count; an exact match scores
    1.0, otherwise the best window around anchor words (the passage's rarer words) gives
    2 x matched tokens / (passage tokens + window tokens). An empty passage is present.
    """
    p, t = _keys(passage), _keys(text)
    if not p:
        return True, 1.0
    if f" {' '.join(p)} " in f" {' '.join(t)} ":
        return True, 1.0
    if not t:
        return False, 0.0
    index: dict[str, list[int]] = defaultdict(list)
    for pos, key in enumerate(t):
        index[key].append(pos)
    # Anchors: where the passage's rarer words occur in the text vote for a start.
    cap = max(20, len(t) // 100)
    usable = [(i, index[k]) for i, k in enumerate(p) if 0 < len(index.get(k, ())) <= cap]
    if not usable:
        usable = [(i, index[k]) for i, k in enumerate(p) if k in index]
    bucket = max(1, len(p) // 4)
    votes: Counter[int] = Counter()
    for offset, positions in usable:
        for pos in positions:
            votes[max(0, pos - offset) // bucket] += 1
    best = 0.0
    for start_bucket, _ in votes.most_common(8):
        start = start_bucket * bucket
        region = t[max(0, start - len(p) // 2) : start + bucket + len(p) + len(p) // 2]
        best = max(best, _window_score(p, region))
    return best >= PRESENT, round(best, 4)
