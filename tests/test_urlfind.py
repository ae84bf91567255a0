"""Finding URLs in plain text, and the passage that cites each one."""

from __future__ import annotations

import pytest

from crawler.passages import passage_around
from crawler.urlfind import FoundURL, find_urls, line_of


def urls(text: str) -> list[str]:
    return [found.url for found in find_urls(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see https://example.org/a?b=1&c=2 now", ["https://example.org/a?b=1&c=2"]),
        ("old http://example.org/x.html here", ["http://example.org/x.html"]),
        ("HTTPS://Example.ORG/Path", ["HTTPS://Example.ORG/Path"]),
        ("https://example.org", ["https://example.org"]),
        ("glued textreported:https://example.org/x", ["https://example.org/x"]),
        ("two https://a.org/1 and https://b.org/2.", ["https://a.org/1", "https://b.org/2"]),
        ("https://bücher.example/straße ok", ["https://bücher.example/straße"]),
    ],
)
def test_scheme_urls(text, expected):
    assert urls(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in the country pic.twitter.com/B37fHB67bh", ["pic.twitter.com/B37fHB67bh"]),
        ("visit www.example.org/x today", ["www.example.org/x"]),
        ("visit www.example.org.", ["www.example.org"]),
        ("as twitter.com/a/status/1 says", ["twitter.com/a/status/1"]),
        ("read bare-domain.de/path/page", ["bare-domain.de/path/page"]),
        ("read bbc.co.uk/news/x.", ["bbc.co.uk/news/x"]),
        ("see example.org/", ["example.org/"]),
    ],
)
def test_scheme_less_urls_with_a_known_tld(text, expected):
    assert urls(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "write to john.doe@example.com or jane@www.example.org",
        "write to jane@example.org/x",
        "words, e.g. this, i.e. that, U.S. forces, a.m. and p.m.",
        "see report.pdf and index.html",
        "example.org alone is a name, not a link",
        "unknown.notatld/path",
        "ASP.NET/Core and Socket.IO/rooms",
        "setup.py/setup.cfg and README.md/CONTRIBUTING.md",
        "9/11, $24.95, 1.5/2, v2.0/beta",
        "mailto:someone@example.org?subject=https",
        "javascript:alert('http://evil.example.org/x')",
        'javascript:open("https://evil.example.org/x")',
        "tel:+1-555-0100 data:text/html,<a>http://x.org</a> file:///home/me/x.org/a",
        "/local/path/docs.example.org/x",
        "http:// https://",
    ],
)
def test_not_urls(text):
    assert urls(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("end https://x.org/a.", "https://x.org/a"),
        ("list https://x.org/a, then", "https://x.org/a"),
        ("semi https://x.org/a; colon https://x.org/b:", "https://x.org/a"),
        ("bang https://x.org/a! ask https://x.org/b?", "https://x.org/a"),
        ("quote 'https://x.org/a'", "https://x.org/a"),
        ('quote "https://x.org/a"', "https://x.org/a"),
        ("curly “https://x.org/a”", "https://x.org/a"),
        ("curly \u2018https://x.org/a\u2019", "https://x.org/a"),
        ("paren (https://x.org/a)", "https://x.org/a"),
        ("bracket [https://x.org/a]", "https://x.org/a"),
        ("brace {https://x.org/a}", "https://x.org/a"),
        ("angle <https://x.org/a>", "https://x.org/a"),
        ("stacked (see https://x.org/a).", "https://x.org/a"),
        ("emphasis *https://x.org/a*", "https://x.org/a"),
    ],
)
def test_trailing_punctuation_is_stripped(text, expected):
    assert urls(text)[0] == expected


def test_balanced_parentheses_are_kept():
    wiki = "https://en.wikipedia.org/wiki/Hezbollah_(disambiguation)"
    assert urls(f"see {wiki}.") == [wiki]
    assert urls(f"(see {wiki}).") == [wiki]
    assert urls(f"({wiki})") == [wiki]
    assert urls("https://x.org/a[1]=2,") == ["https://x.org/a[1]=2"]


def test_autolink_offsets_exclude_the_angle_brackets():
    text = "Link: <https://x.org/a>"
    (found,) = find_urls(text)
    assert found == FoundURL("https://x.org/a", 7, 22)
    assert text[found.start : found.end] == "https://x.org/a"


def test_offsets_point_at_the_url_as_it_appears():
    text = "a “pic.twitter.com/B37fHB67bh” b https://x.org/(c))."
    first, second = find_urls(text)
    assert text[first.start : first.end] == "pic.twitter.com/B37fHB67bh"
    assert (second.url, text[second.start : second.end]) == (
        "https://x.org/(c)",
        "https://x.org/(c)",
    )


@pytest.mark.parametrize(
    ("text", "expected", "as_seen"),
    [
        # The break falls in the middle of a path segment; nothing else on the next line.
        (
            "read https://example.org/2021/08/some-long-artic\nle-title.html\nand more",
            "https://example.org/2021/08/some-long-article-title.html",
            "https://example.org/2021/08/some-long-artic\nle-title.html",
        ),
        # The URL so far ends in "/", the next line starts with a path, a sentence follows.
        (
            "see https://example.org/reports/\n2021/annual-report.pdf for details.",
            "https://example.org/reports/2021/annual-report.pdf",
            "https://example.org/reports/\n2021/annual-report.pdf",
        ),
        # Broken inside a query string, with Windows line ends.
        (
            "see https://example.org/search?q=isis&\r\nlang=en&page=2.\r\n",
            "https://example.org/search?q=isis&lang=en&page=2",
            "https://example.org/search?q=isis&\r\nlang=en&page=2",
        ),
        # Broken twice.
        (
            "https://example.org/a-very-/\nlong-path-/\nthat-goes-on\n",
            "https://example.org/a-very-/long-path-/that-goes-on",
            "https://example.org/a-very-/\nlong-path-/\nthat-goes-on",
        ),
        # A scheme-less URL broken after "/".
        (
            "photo pic.twitter.com/\nB37fHB67bh",
            "pic.twitter.com/B37fHB67bh",
            "pic.twitter.com/\nB37fHB67bh",
        ),
    ],
)
def test_url_broken_across_lines_is_joined(text, expected, as_seen):
    (found,) = find_urls(text)
    assert found.url == expected
    assert text[found.start : found.end] == as_seen


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A complete URL, then the sentence goes on: must not be joined.
        (
            "Read more at https://example.org/report\nand more text here.",
            ["https://example.org/report"],
        ),
        ("ends a sentence https://example.org/a.\nnext-thing.html", ["https://example.org/a"]),
        (
            "slash then prose https://example.org/news/\nThe next paragraph.",
            ["https://example.org/news/"],
        ),
        ("host only https://example.org\nfoo-bar.html", ["https://example.org"]),
        ("indented https://example.org/a-\n continued-text", ["https://example.org/a-"]),
        ("year below https://example.org/a/\n2021", ["https://example.org/a/"]),
        # Two URLs on consecutive lines stay two URLs (the sample's lines 63-64).
        (
            "https://twitter.com/a/status/1?ref_src=twsrc%5Etfw\nhttps://edition.cnn.com/v.cnn",
            ["https://twitter.com/a/status/1?ref_src=twsrc%5Etfw", "https://edition.cnn.com/v.cnn"],
        ),
        ("https://x.org/a/\nwww.y.org/b", ["https://x.org/a/", "www.y.org/b"]),
        ("https://x.org/a/\npic.twitter.com/b", ["https://x.org/a/", "pic.twitter.com/b"]),
    ],
)
def test_normal_next_line_is_not_joined(text, expected):
    assert urls(text) == expected


def test_many_urls_in_a_large_text_complete():
    filler = "Some words of ordinary prose, e.g. this one, and more of it. " * 8
    text = "".join(f"{filler}See https://example.org/p/{i}?utm_source=x.\n" for i in range(10_000))
    assert len(text) > 5_000_000
    found = find_urls(text)
    assert len(found) == 10_000
    assert found[-1].url == "https://example.org/p/9999?utm_source=x"
    assert line_of(text, found[-1].start) == 10_000
    passages = [passage_around(text, f.start, f.end) for f in found]
    assert passages[-1] == "Some words of ordinary prose, e.g. this one, and more of it."


@pytest.mark.parametrize(
    "text",
    [
        "http://" + "a." * 100_000,
        "a." * 200_000,
        "www." * 100_000,
        "aaaa.bbbb." * 50_000 + "/x",
        "http://a" + ")" * 100_000,
        "(" * 100_000 + "http://x.org/" + ")" * 100_000,
        ("x" * 62 + ".") * 30_000,
        "x" * 200_000 + ".com/",
        ".com/" * 100_000,
    ],
)
def test_pathological_strings_complete(text):
    found = find_urls(text)
    assert all(len(f.url) <= len(text) for f in found)


def test_pathological_url_is_one_url():
    (found,) = find_urls("http://" + "a." * 100_000)
    assert found.url == "http://" + "a." * 99_999 + "a"


def test_line_of():
    text = "one\ntwo https://x.org/\n\nfour"
    assert line_of(text, 0) == 1
    assert line_of(text, text.index("https")) == 2
    assert line_of(text, text.index("four")) == 4
    assert line_of(text, 3) == 1  # the newline itself belongs to the line it ends


# --- passages ---------------------------------------------------------------------------


def passage(text: str, index: int = 0, max_chars: int = 600) -> str | None:
    found = find_urls(text)[index]
    return passage_around(text, found.start, found.end, max_chars)


def test_passage_is_the_sentence_without_the_url():
    text = (
        "First sentence here. The report (https://x.org/r) says the\n"
        "attack was planned. Gen. Nicholson disagreed."
    )
    assert passage(text) == "The report says the attack was planned."


def test_passage_stops_at_blank_lines_and_skips_abbreviations():
    text = (
        "A heading\n\nAs the U.S. envoy said at https://x.org/r, e.g. in May, it was over!\n\n"
        "Next paragraph."
    )
    assert passage(text) == "As the U.S. envoy said at, e.g. in May, it was over!"


def test_passage_around_a_url_broken_across_lines():
    text = "Intro. The data (see https://example.org/reports/\n2021/annual.pdf) is old. Next."
    assert passage(text) == "The data (see) is old."


def test_passage_of_url_at_sentence_end():
    text = "One. Read it at https://x.org/r. Two."
    assert passage(text) == "Read it at."


def test_passage_is_cut_to_max_chars_around_the_url():
    words = " ".join(f"word{i}" for i in range(300))
    text = f"{words} https://x.org/r {words}."
    result = passage(text, max_chars=100)
    assert result is not None and len(result) <= 100
    assert result.startswith("…") and result.endswith("…")
    assert "word299 word0" in result  # the words right around the URL are kept


def test_passage_none_when_only_urls():
    text = "https://x.org/a\nhttps://x.org/b\n\n| 3\n"
    assert passage(text) is None
    assert passage(text, 1) is None


def test_detached_url_after_a_lead_in():
    text = "Intro.\n\nThe full report is available here:\nhttps://x.org/report\n\nNext part."
    assert passage(text) == "The full report is available here:"


def test_detached_urls_interrupting_a_sentence_rejoin_it():
    text = (
        "Many holes remain. It is worth noting here that the US is in charge\n\n"
        "https://example.org/a\nhttps://example.org/b\n\n\n| 3\n\n"
        "of security at the airport until August 31. Moreover, more.\n"
    )
    expected = "It is worth noting here that the US is in charge of security at the airport"
    expected += " until August 31."
    assert passage(text) == expected
    assert passage(text, 1) == expected


def test_detached_url_prefers_the_sentence_naming_its_site():
    text = (
        "CNN\u2019s Clarissa Ward interviewed him. Nothing else.\n\n"
        "Screenshot from CNN\u2019s interview.\n\nOther prose follows here.\n\n"
        "https://edition.cnn.com/videos/world/x.cnn\n"
    )
    assert passage(text) == "Screenshot from CNN\u2019s interview."


TWEET = (
    "Article prose before.\n\n"
    'NYT Live Update: US forces are conducting "controlled\n'
    'demolitions" in CIA bases in the country \ufffd pic.twitter.com/B37fHB67bh\n\n'
    "— Alex Rubinstein (@RealAlexRubi) August 28, 2021\n"
)
TWEET_TEXT = (
    'NYT Live Update: US forces are conducting "controlled demolitions" in CIA bases in the country'
)


def test_url_inside_a_tweet_quote_gets_the_tweet_text():
    assert passage(TWEET) == TWEET_TEXT


def test_url_right_after_or_before_a_tweet_gets_the_tweet_text():
    after = TWEET + "https://twitter.com/RealAlexRubi/status/1431733827714625541\n\nMore prose."
    assert passage(after, 1) == TWEET_TEXT + " pic.twitter.com/B37fHB67bh"
    before = (
        "Prose.\n\nhttps://twitter.com/RealAlexRubi/status/14\n"
        + TWEET[len("Article prose before.\n\n") :]
    )
    assert passage(before) == TWEET_TEXT + " pic.twitter.com/B37fHB67bh"


def test_detached_status_url_finds_the_tweet_by_the_same_account():
    text = (
        "In 2017, SANA reported that US helicopters moved 40 ISIS militants.\n\n"
        "— Hadi Nasrallah (@HadiNasrallah) August 28, 2021\n\n"
        "Long prose about other things. More of it.\n\n"
        "https://twitter.com/hadinasrallah/status/1431426013700009986?ref_src=twsrc%5Etfw\n"
        " In February 2018, Lavrov implored the US to answer.\n"
    )
    assert passage(text) == "In 2017, SANA reported that US helicopters moved 40 ISIS militants."


def test_inline_status_url_keeps_its_own_sentence():
    text = (
        "Tweet text here.\n— Someone (@someone) May 1, 2021\n\n"
        "He later wrote (https://twitter.com/someone/status/2) that it was wrong.\n"
    )
    assert passage(text) == "He later wrote that it was wrong."


def test_link_text_span_stays_in_its_sentence():
    # HTML and PDF readers pass the span of a link's text, not of a URL.
    text = "Intro. As CNN reported, the attack was planned. Next."
    at = text.index("reported")
    assert (
        passage_around(text, at, at + len("reported")) == "As CNN reported, the attack was planned."
    )
    alone = "Intro.\n\nRead the full report\n\nNext."
    at = alone.index("Read")
    assert passage_around(alone, at, at + len("Read the full report")) == "Read the full report"


def test_link_text_on_a_tweet_attribution_gets_the_tweet_text():
    at = TWEET.index("August 28, 2021")
    assert passage_around(TWEET, at, at + len("August 28, 2021")) == (
        TWEET_TEXT + " pic.twitter.com/B37fHB67bh"
    )


def test_url_after_its_sentence_gets_that_sentence():
    text = "References\n\n1. Smith, J. (2020). Title of the work. https://a.org/x\n"
    assert passage(text) == "Title of the work."
    text = "He said so on the radio. https://a.org/x https://b.org/y\n\nNext."
    assert passage(text) == "He said so on the radio."
    assert passage(text, 1) == "He said so on the radio."


def test_a_list_item_naming_a_handle_is_not_a_tweet():
    text = "Intro. Read https://x.org/a today. Then more.\n- Jane Doe (@jdoe) wrote back\n"
    assert passage(text) == "Read today."


@pytest.mark.parametrize(
    ("text", "passage"),
    [
        (
            "The embassy warned that \u201cUS citizens should leave now.\u201d (source: https://e.org/a)",
            "The embassy warned that \u201cUS citizens should leave now.\u201d",
        ),
        (
            "The embassy told citizens to leave. See: https://e.org/a",
            "The embassy told citizens to leave.",
        ),
        (
            "As CNN reported https://e.org/a the attack was planned.",
            "As CNN reported the attack was planned.",
        ),
    ],
)
def test_a_label_before_a_url_cites_the_sentence_before(text, passage):
    [found] = find_urls(text)
    assert passage_around(text, found.start, found.end) == passage
