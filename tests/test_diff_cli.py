"""``citearchive diff`` on a store built without a browser, run as a user would run it."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from cliutil import run_cli, write_config
from PIL import Image, ImageDraw

from crawler.app import App
from crawler.archiving import store_capture
from crawler.config import load_config
from crawler.items import CaptureItem
from crawler.sources import Citation, register

ARTICLE = "https://example.org/article"
ONCE = "https://example.org/once"
BODY = " ".join(f"Paragraph sentence {n} reports the vote in county {n}." for n in range(30))
V1 = "Election results\n\n" + BODY
V2 = V1.replace("county 12", "parish 12")


@dataclass
class Store:
    config: Path
    article: str  # canonical URL
    once: str
    v1: str  # capture ids
    v2: str
    v3: str
    lone: str


def screenshot(square_x: int) -> bytes:
    image = Image.new("RGB", (320, 480), "white")
    ImageDraw.Draw(image).rectangle((square_x, 100, square_x + 39, 139), fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def capture(app: App, source: dict, day: int, text: str, shot: bytes) -> str:
    item = CaptureItem(
        source_id=source["id"],
        url=source["canonical_url"],
        captured_at=f"2024-03-{day:02d}T12:00:00.000000Z",
        final_url=source["canonical_url"],
        http_status=200,
        media_type="text/html",
        raw=f"<html><body><p>{text}</p></body></html>".encode(),
        text=text,
        screenshot=shot,
    )
    return store_capture(app.archive, app.index, item).manifest["id"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("diffstore")
    config = write_config(root / "c.toml", f"file://{root / 'store'}")
    app = App.open(load_config(config))
    try:
        article, once = register(app.archive, app.index, [Citation(ARTICLE), Citation(ONCE)])
        v1 = capture(app, article, 1, V1, screenshot(20))
        v2 = capture(app, article, 2, V2, screenshot(200))
        v3 = capture(app, article, 3, V2, screenshot(200))
        lone = capture(app, once, 1, "Only ever captured once.", screenshot(20))
    finally:
        app.close()
    return Store(config, article["canonical_url"], once["canonical_url"], v1, v2, v3, lone)


def headers(out: str) -> list[str]:
    return [line.split("\t")[0] for line in out.splitlines()[:2]]


def changed(out: str) -> list[str]:
    return [line for line in out.splitlines()[2:] if line[:1] in "-+"]


def test_default_compares_latest_with_previous_different_content(store: Store):
    res = run_cli(store.config, "diff", ARTICLE)
    assert res.code == 0, res.err
    assert headers(res.out) == [f"--- {store.v1}", f"+++ {store.v3}"]
    assert "2024-03-01T12:00:00.000000Z" in res.out.splitlines()[0]
    assert changed(res.out) == [
        "-Paragraph sentence 12 reports the vote in county 12.",
        "+Paragraph sentence 12 reports the vote in parish 12.",
    ]


def test_json_format(store: Store):
    res = run_cli(store.config, "diff", ARTICLE, "--format", "json")
    assert res.code == 0, res.err
    result = json.loads(res.out)
    assert result["changes"] is True
    assert (result["from"]["id"], result["to"]["id"]) == (store.v1, store.v3)
    assert result["from"]["captured_at"] == "2024-03-01T12:00:00.000000Z"
    [hunk] = result["hunks"]
    assert hunk["op"] == "replace"
    assert hunk["words"] == [{"op": "replace", "from": "county", "to": "parish"}]
    assert 0.9 < result["similarity"] < 1
    # The square moved from x=20 to x=200: both places changed.
    assert result["screenshot_regions"] == [[20, 100, 60, 140], [200, 100, 240, 140]]


def test_html_format_to_a_file(store: Store, tmp_path: Path):
    target = tmp_path / "diff.html"
    res = run_cli(store.config, "diff", ARTICLE, "--format", "html", "-o", str(target))
    assert res.code == 0, res.err
    assert res.out == ""
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in page and "<script" not in page
    assert "<del>county</del>" in page and "<ins>parish</ins>" in page
    assert store.v1 in page and store.v3 in page
    assert page.count("data:image/png;base64,") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diff.html"]  # no temp file left


def test_from_and_to_take_id_prefixes(store: Store):
    res = run_cli(store.config, "diff", ARTICLE, "--from", store.v3[:6], "--to", store.v1[:8])
    assert res.code == 0, res.err
    assert headers(res.out) == [f"--- {store.v3}", f"+++ {store.v1}"]
    assert changed(res.out)[0].endswith("parish 12.")


def test_to_alone_picks_the_previous_different_capture(store: Store):
    res = run_cli(store.config, "diff", ARTICLE, "--to", store.v2, "--format", "json")
    assert res.code == 0, res.err
    result = json.loads(res.out)
    assert (result["from"]["id"], result["to"]["id"]) == (store.v1, store.v2)


def test_explicit_captures_with_the_same_content(store: Store):
    res = run_cli(store.config, "diff", ARTICLE, "--from", store.v2, "--to", store.v3)
    assert res.code == 0, res.err
    assert res.out.startswith(f"no differences in the text of {store.v2} and {store.v3}")
    res = run_cli(store.config, "diff", ARTICLE, "--to", store.v1)
    assert res.code == 0 and res.out.startswith("no change:") and store.v1 in res.out


def test_unknown_or_foreign_capture_id_exits_3(store: Store):
    res = run_cli(store.config, "diff", ARTICLE, "--from", "ffffffffffffffff")
    assert res.code == 3
    assert "ffffffffffffffff" in res.err and store.article in res.err
    res = run_cli(store.config, "diff", ARTICLE, "--to", store.lone)
    assert res.code == 3
    assert store.lone in res.err and "another source" in res.err
    res = run_cli(store.config, "diff", "https://example.org/never-added")
    assert res.code == 3


def test_short_prefix_is_bad_input(store: Store):
    res = run_cli(store.config, "diff", ARTICLE, "--from", store.v1[:5])
    assert res.code == 2 and "at least 6 characters" in res.err


def test_single_capture_means_no_change(store: Store, tmp_path: Path):
    res = run_cli(store.config, "diff", ONCE)
    assert res.code == 0, res.err
    assert res.out == f"no change: every capture of {store.once} has the same content\n"
    target = tmp_path / "d.json"
    res = run_cli(store.config, "diff", ONCE, "--format", "json", "-o", str(target))
    assert res.code == 0, res.err
    result = json.loads(target.read_text())
    assert result["changes"] is False and result["to"] == store.lone
