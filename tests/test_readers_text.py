"""The plain text and Markdown readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.readers import DocLink, parse_document
from crawler.readers import markdown as markdown_reader
from crawler.readers import text as text_reader

SAMPLES = Path(__file__).parents[2] / "shared" / "samples"

# The sample's citations, with what a careful reader calls the citing passage of each.
SAMPLE_LINKS = [
    # Line 63: a link target PDF extraction left at the page's end, far from its embed.
    # It is a status of @RealAlexRubi, whose embedded tweet (lines 25-28) is above.
    DocLink(
        "https://twitter.com/RealAlexRubi/status/1431733827714625541?ref_src=twsrc%5Etfw",
        "line 63",
        None,
        "In fact, all the way back in August 2016 \u2014 a little over five years ago \u2014"
        " Taliban spokesman Zabihullah Mujahid told Iranian media that \u201cIn cooperation"
        " with the nation, [the Taliban] has prevented the terrorist group from gaining a"
        " foothold in Afghanistan.\u201d",
    ),
    # Line 64: the CNN video, detached too; the nearest sentence naming CNN is the
    # caption of the screenshot that linked to it (line 51).
    DocLink(
        "https://edition.cnn.com/videos/world/2021/08/28/"
        "isis-k-leader-intv-ward-afghanistan-kabul-attack-vpx.cnn",
        "line 64",
        None,
        "Screenshot from CNN\u2019s interview.",
    ),
    # Line 98: inside the quoted tweet; the passage is the tweet, the lost emoji dropped.
    DocLink(
        "pic.twitter.com/B37fHB67bh",
        "line 98",
        None,
        "NYT Live Update from 40mins ago: following the failure to act on intelligence and"
        " prevent 'ISIS-K' from carrying out a suicide bombing that the US had advanced"
        ' knowledge of, US forces in Afghanistan are conducting "controlled demolitions" in'
        " CIA bases in the country",
    ),
    # Line 171: a status of @HadiNasrallah, whose embedded tweet is lines 128-133.
    DocLink(
        "https://twitter.com/HadiNasrallah/status/1431426013700009986?ref_src=twsrc%5Etfw",
        "line 171",
        None,
        "In 2017 and 2020, Syria\u2019s SANA reported that that US helicopters transported"
        " between 40 and 75 ISIS militants from Hasakah, North Syria to an \u201cunknown"
        " area\u201d. The same thing was reported for years in Iraq by the PMU along with"
        " reports that US helicopters dropped aid for ISIS.",
    ),
]


def test_sample_article_cites_four_urls_with_their_passages():
    data = (SAMPLES / "article-isis-k.txt").read_bytes()
    assert text_reader.read(data, "article-isis-k.txt") == SAMPLE_LINKS
    parsed = parse_document(data, "article-isis-k.txt")
    assert (parsed.kind, parsed.links) == ("text", SAMPLE_LINKS)


def test_text_locations_and_passages():
    data = b"Intro line.\nThe report (https://example.org/r) is out.\n\nwww.example.org/x\n"
    assert text_reader.read(data, "notes.txt") == [
        DocLink("https://example.org/r", "line 2", None, "The report is out."),
        # Alone on its line: the nearest sentence above; only the URL itself is left out.
        DocLink("www.example.org/x", "line 4", None, "The report (https://example.org/r) is out."),
    ]


def test_text_ignores_non_web_schemes():
    data = b"mailto:a@example.org javascript:alert(1) tel:+15550100 see https://x.org/a."
    assert [link.url for link in text_reader.read(data, "n.txt")] == ["https://x.org/a"]


def test_cp1252_text_decodes():
    data = "\u201cQuoted\u201d \u2013 caf\u00e9 https://example.org/caf\u00e9 \u2014 ok.".encode(
        "cp1252"
    )
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    (link,) = text_reader.read(data, "legacy.txt")
    assert link.url == "https://example.org/caf\u00e9"
    assert link.passage == "\u201cQuoted\u201d \u2013 caf\u00e9 \u2014 ok."


def test_bytes_undefined_in_cp1252_fall_back_to_latin1():
    data = b"\x81\x8d caf\xe9 https://example.org/a"
    (link,) = text_reader.read(data, "odd.txt")
    assert (link.url, link.passage) == ("https://example.org/a", "\x81\x8d caf\u00e9")


def test_utf8_bom_is_not_text():
    assert text_reader.decode("https://x.org/a".encode("utf-8-sig")) == "https://x.org/a"


MARKDOWN = """\
# Sources for *the* article

The attack was [reported by CNN](https://edition.cnn.com/videos/x.cnn "CNN video") two weeks
before. The **embassy** warned [in an alert][alert] on August 25.

As the [alert] said; see [the BBC][] and <https://www.bbc.com/news/a>.

![Photo of the airport](<https://example.org/img/airport.jpg>) Photo caption here.

Bare link: https://en.wikipedia.org/wiki/Hezbollah_(disambiguation). And [the Taliban] said
nothing. [Again][ALERT] and [typed](www.example.org/typed).

[![Thumbnail](https://img.example.org/t.png)](https://video.example.org/v/1)

Not cited: `https://code.example.org/inline`, a [local link](docs/setup.md), [top](#top),
[mail](mailto:a@example.org), <mailto:b@example.org>, [js](javascript:alert(1)).

```python
fetch("https://fenced.example.org/ignored")  # [x](https://fenced.example.org/link)
```

~~~~
https://tilde.example.org/ignored
~~~~

> Quoted: [a *quoted* link](https://quote.example.org/q\\_1?a=1&amp;b=2).

[alert]: https://af.usembassy.gov/security-alert-kabul-august-25-2021/ "Alert"
[the bbc]: <https://www.bbc.co.uk/news/world>
"""

ALERT = "https://af.usembassy.gov/security-alert-kabul-august-25-2021/"


def test_markdown_link_kinds():
    links = markdown_reader.read(MARKDOWN.encode(), "sources.md")
    assert links == [
        DocLink(
            "https://edition.cnn.com/videos/x.cnn",
            "line 3",
            "reported by CNN",
            "The attack was reported by CNN two weeks before.",
        ),
        DocLink(ALERT, "line 4", "in an alert", "The embassy warned in an alert on August 25."),
        DocLink(
            ALERT,
            "line 6",
            "alert",
            "As the alert said; see the BBC and https://www.bbc.com/news/a.",
        ),
        DocLink(
            "https://www.bbc.co.uk/news/world",
            "line 6",
            "the BBC",
            "As the alert said; see the BBC and https://www.bbc.com/news/a.",
        ),
        DocLink(
            "https://www.bbc.com/news/a", "line 6", None, "As the alert said; see the BBC and."
        ),
        DocLink(
            "https://example.org/img/airport.jpg",
            "line 8",
            "Photo of the airport",
            "Photo of the airport Photo caption here.",
        ),
        DocLink(
            "https://en.wikipedia.org/wiki/Hezbollah_(disambiguation)",
            "line 10",
            None,
            "Bare link:.",
        ),
        DocLink(
            ALERT,
            "line 11",
            "Again",
            "Again and typed.",
        ),
        DocLink("www.example.org/typed", "line 11", "typed", "Again and typed."),
        DocLink("https://video.example.org/v/1", "line 13", "Thumbnail", "Thumbnail"),
        DocLink("https://img.example.org/t.png", "line 13", "Thumbnail", "Thumbnail"),
        DocLink(
            "https://quote.example.org/q_1?a=1&b=2",
            "line 26",
            "a quoted link",
            "Quoted: a quoted link.",
        ),
    ]


def test_markdown_reference_used_twice_is_two_citations():
    data = b"See [one][r] and [two][r].\n\n[r]: https://example.org/r\n[unused]: https://x.org/\n"
    links = markdown_reader.read(data, "refs.md")
    assert [(link.url, link.anchor) for link in links] == [
        ("https://example.org/r", "one"),
        ("https://example.org/r", "two"),
    ]


def test_markdown_ignores_non_web_links_and_code():
    data = (
        b"[top](#top) [rel](../a/b.html) [mail](mailto:a@x.org) [js](javascript:void(0))\n"
        b"[tel](tel:+15550100) `www.example.org/code`\n\n"
        b"```\nhttps://unclosed.example.org/fence\n"
    )
    assert markdown_reader.read(data, "none.md") == []


def test_markdown_dispatch_by_name():
    parsed = parse_document(b"Read [this](https://x.org/a).\n", "notes.markdown")
    assert parsed.kind == "markdown"
    assert parsed.links == [DocLink("https://x.org/a", "line 1", "this", "Read this.")]


def test_markdown_with_ten_thousand_links_completes():
    prose = "Ordinary prose of a long report. It goes on, e.g. like this. " * 6
    doc = "".join(
        f"{prose}See [item {i}](https://example.org/p/{i}) and [ref][r{i % 50}].\n\n"
        for i in range(5_000)
    ) + "".join(f"[r{i}]: https://ref.example.org/{i}\n" for i in range(50))
    links = markdown_reader.read(doc.encode(), "big.md")
    assert len(links) == 10_000
    assert links[-1] == DocLink(
        "https://ref.example.org/49", "line 9999", "ref", "See item 4999 and ref."
    )


@pytest.mark.parametrize(
    "doc",
    [
        "[" * 100_000 + "`" * 1_000 + "](" * 50_000,
        "[a\\\\\\" * 100_000,
        "[a](b" * 100_000,
        "[x](" + "(" * 100_000,
        "``a" + "`a" * 100_000,
        "[" + "[a]" * 100_000,
        "![" * 100_000,
        "*_" * 200_000,
        "```\n" * 1_001,
    ],
)
def test_pathological_markdown_completes(doc):
    assert markdown_reader.read(doc.encode(), "odd.md") == []


def test_markdown_angle_destination_with_spaces():
    data = b"See [the file](<https://x.org/my report.pdf>).\n"
    (link,) = markdown_reader.read(data, "sp.md")
    assert (link.url, link.anchor) == ("https://x.org/my%20report.pdf", "the file")


def test_markdown_with_windows_line_ends():
    data = (
        b"```\r\nhttps://code.example.org/x\r\n```\r\nSee [it][r].\r\n\r\n[r]: https://x.org/r\r\n"
    )
    assert markdown_reader.read(data, "crlf.md") == [
        DocLink("https://x.org/r", "line 4", "it", "See it.")
    ]
