"""Text, JSON and HTML diffs of two captures, and changed screenshot regions (no browser)."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image, ImageDraw

from crawler.diffing import (
    DiffSide,
    changed_regions,
    html_diff,
    json_diff,
    sentences,
    text_diff,
)

PARAGRAPH = " ".join(f"Sentence {n} says the minister visited district {n}." for n in range(40))
CSP = (
    '<meta http-equiv="Content-Security-Policy" '
    "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
)


def side(capture_id: str, text: str, screenshot: bytes | None = None) -> DiffSide:
    when = (
        "2024-01-01T00:00:00.000000Z" if capture_id == "aaaaaaaa" else "2024-02-01T00:00:00.000000Z"
    )
    return DiffSide(capture_id, when, "https://example.org/story", text, screenshot)


def png(width: int, height: int, *squares: tuple[int, int, int, int]) -> bytes:
    image = Image.new("RGB", (width, height), "white")
    for x0, y0, x1, y1 in squares:
        ImageDraw.Draw(image).rectangle((x0, y0, x1 - 1, y1 - 1), fill=(20, 40, 200))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def changed_lines(diff: str) -> list[str]:
    return [
        line for line in diff.splitlines() if line[:1] in "-+" and line[:3] not in ("---", "+++")
    ]


def test_sentences_split_paragraphs_and_collapse_whitespace():
    text = 'He said "Stop." Then   left!\n\nWhy? Because.\n  \nv1.2 is out'
    assert sentences(text) == ['He said "Stop."', "Then left!", "Why?", "Because.", "v1.2 is out"]


def test_one_word_edit_in_long_paragraph_is_one_changed_sentence():
    a = side("aaaaaaaa", "Headline\n\n" + PARAGRAPH)
    b = side("bbbbbbbb", "Headline\n\n" + PARAGRAPH.replace("district 17", "province 17"))
    diff = text_diff(a, b)
    assert diff.startswith(
        "--- aaaaaaaa\t2024-01-01T00:00:00.000000Z\n+++ bbbbbbbb\t2024-02-01T00:00:00.000000Z\n"
    )
    assert changed_lines(diff) == [
        "-Sentence 17 says the minister visited district 17.",
        "+Sentence 17 says the minister visited province 17.",
    ]
    assert "@@ -16,7 +16,7 @@" in diff  # headline is line 1, sentence 17 is line 19
    assert len(text_diff(a, b, context=0).splitlines()) == 5


def test_json_replace_hunk_names_the_changed_word():
    a = side("aaaaaaaa", PARAGRAPH)
    b = side("bbbbbbbb", PARAGRAPH.replace("district 17", "province 17"))
    result = json_diff(a, b)
    assert result["from"] == {
        "id": "aaaaaaaa",
        "captured_at": "2024-01-01T00:00:00.000000Z",
        "url": "https://example.org/story",
    }
    assert result["to"]["id"] == "bbbbbbbb"
    assert result["hunks"] == [
        {
            "op": "replace",
            "from_start": 18,
            "from_lines": ["Sentence 17 says the minister visited district 17."],
            "to_start": 18,
            "to_lines": ["Sentence 17 says the minister visited province 17."],
            "words": [{"op": "replace", "from": "district", "to": "province"}],
        }
    ]
    assert 0.99 < result["similarity"] < 1.0
    assert result["screenshot_regions"] is None  # no screenshots to compare


def test_json_insert_and_delete_hunks():
    a = side("aaaaaaaa", "One. Two. Three. Four.")
    b = side("bbbbbbbb", "One. Three. Four. Five.")
    hunks = json_diff(a, b)["hunks"]
    assert hunks == [
        {"op": "delete", "from_start": 2, "from_lines": ["Two."], "to_start": 2, "to_lines": []},
        {"op": "insert", "from_start": 5, "from_lines": [], "to_start": 4, "to_lines": ["Five."]},
    ]
    assert changed_lines(text_diff(a, b)) == ["-Two.", "+Five."]


def test_repeated_sentences_still_anchor_the_diff():
    # difflib's autojunk would ignore a sentence this frequent and report it as changed.
    lines = [f"Story line {n}." if n % 2 else "Advertisement." for n in range(300)]
    edited = [f"Rewritten line {n}." if n % 2 and 100 < n < 120 else s for n, s in enumerate(lines)]
    a, b = side("aaaaaaaa", "\n".join(lines)), side("bbbbbbbb", "\n".join(edited))
    assert "-Advertisement." not in changed_lines(text_diff(a, b))
    assert len(changed_lines(text_diff(a, b))) == 20
    assert len(json_diff(a, b)["hunks"]) == 10


def test_word_ops_inside_a_replace_hunk():
    a = side("aaaaaaaa", "The cat sat on the mat today.")
    b = side("bbbbbbbb", "The cat lay on the old mat today.")
    [hunk] = json_diff(a, b)["hunks"]
    assert hunk["words"] == [
        {"op": "replace", "from": "sat", "to": "lay"},
        {"op": "insert", "from": "", "to": "old"},
    ]


def test_identical_texts_have_no_hunks():
    a = side("aaaaaaaa", PARAGRAPH, png(50, 50))
    b = side("bbbbbbbb", "  " + PARAGRAPH.replace(". ", ".\n"), png(50, 50))
    assert text_diff(a, b) == ""
    result = json_diff(a, b)
    assert result["hunks"] == [] and result["similarity"] == 1.0
    assert result["screenshot_regions"] == []
    assert json_diff(side("a", ""), side("b", ""))["similarity"] == 1.0


def test_unrelated_texts_have_similarity_zero():
    assert json_diff(side("a", "Alpha beta."), side("b", "Gamma delta."))["similarity"] == 0.0


def test_html_escapes_archived_text_and_has_no_script():
    evil = '<script>alert("x")</script> <img src=https://evil.example/p.png>'
    a = side("aaaaaaaa", f"Read this. {evil} now. Old {evil} ending.", png(200, 200))
    b = side("bbbbbbbb", f"Read this. {evil} now. New {evil} ending. {evil} added.", png(200, 200))
    page = html_diff(a, b)
    assert CSP in page
    assert "<script" not in page.lower() and "<img src=https" not in page
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    # Twice in the unchanged row, once on the "from" side of the change, twice on the "to" side.
    assert page.count(escaped) == 5
    assert "<del>Old</del>" in page and "<ins>New</ins>" in page
    assert "aaaaaaaa" in page and "bbbbbbbb" in page and "https://example.org/story" in page
    sources = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in page and "url(" not in page


def test_html_collapses_unchanged_runs():
    a = side("aaaaaaaa", PARAGRAPH)
    b = side("bbbbbbbb", PARAGRAPH.replace("district 20", "province 20"))
    page = html_diff(a, b)
    assert "18 unchanged sentences" in page and "17 unchanged sentences" in page
    assert "Sentence 5 says" not in page and "Sentence 19 says" in page


def test_html_without_screenshots_and_with_a_tall_one():
    tall = png(100, 9000, (10, 8500, 50, 8540))
    page = html_diff(side("aaaaaaaa", "A.", None), side("bbbbbbbb", "B.", tall))
    assert "no screenshot" in page and "top 8000 of 9000 px" in page
    [data] = re.findall(r'src="data:image/png;base64,([^"]*)"', page)
    shown = Image.open(io.BytesIO(base64.b64decode(data)))
    assert shown.format == "PNG" and shown.size == (100, 8000)


def test_html_outlines_changed_regions_on_the_screenshots():
    page = html_diff(
        side("aaaaaaaa", "A.", png(200, 200)),
        side("bbbbbbbb", "A.", png(200, 200, (100, 100, 140, 140))),
    )
    assert "1 changed region(s)" in page
    first, _ = re.findall(r'src="data:image/png;base64,([^"]*)"', page)
    shown = Image.open(io.BytesIO(base64.b64decode(first))).convert("RGB")
    assert shown.getpixel((100, 120)) == (230, 0, 0)  # the outline, drawn on a copy
    assert shown.getpixel((120, 120)) == (255, 255, 255)


def test_changed_regions_finds_one_square():
    before = png(400, 300, (10, 10, 30, 30))
    after = png(400, 300, (10, 10, 30, 30), (150, 70, 190, 110))
    assert changed_regions(before, after) == [(150, 70, 190, 110)]


def test_changed_regions_identical_and_below_threshold():
    assert changed_regions(png(64, 64, (0, 0, 8, 8)), png(64, 64, (0, 0, 8, 8))) == []
    faint = Image.new("RGB", (64, 64), (245, 245, 245))
    out = io.BytesIO()
    faint.save(out, "PNG")
    assert changed_regions(png(64, 64), out.getvalue()) == []  # 10 levels < threshold 24
    assert changed_regions(png(64, 64), out.getvalue(), threshold=5) == [(0, 0, 64, 64)]


def test_changed_regions_of_different_sizes():
    assert changed_regions(png(100, 100), png(100, 160)) == [(0, 100, 100, 160)]
    assert changed_regions(png(120, 100), png(100, 100)) == [(100, 0, 120, 100)]
    # A black page that got longer: the extra part counts even though it matches the padding.
    dark = [io.BytesIO(), io.BytesIO()]
    Image.new("RGB", (50, 50)).save(dark[0], "PNG")
    Image.new("RGB", (70, 80)).save(dark[1], "PNG")
    assert changed_regions(dark[0].getvalue(), dark[1].getvalue()) == [(0, 0, 70, 80)]
    assert changed_regions(dark[0].getvalue(), dark[0].getvalue()) == []


def test_changed_regions_ignores_specks_smaller_than_min_area():
    assert changed_regions(png(100, 100), png(100, 100, (50, 50, 53, 53))) == []
    assert changed_regions(png(100, 100), png(100, 100, (50, 50, 53, 53)), min_area=9) == [
        (50, 50, 53, 53)
    ]


def test_changed_regions_merge_when_there_are_too_many():
    squares = [(x, y, x + 8, y + 8) for x in range(0, 640, 64) for y in range(0, 640, 64)]
    after = png(640, 640, *squares)
    assert len(changed_regions(png(640, 640), after, max_regions=100)) == 100
    merged = changed_regions(png(640, 640), after, max_regions=5)
    assert 1 <= len(merged) <= 5
    for x0, y0, x1, y1 in squares:  # every change is still inside some box
        assert any(b[0] <= x0 and b[1] <= y0 and x1 <= b[2] and y1 <= b[3] for b in merged)
