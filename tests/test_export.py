"""``citearchive export``: WARC files and WACZ packages of real captures, checked by py-wacz
and replayed by pywb (both from .venv-tools, see tests/tools.py)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import urllib.request
import zipfile
from pathlib import Path

import pytest
from cliutil import history, run_cli, write_config
from fixture_site import FixtureSite, make_pdf
from tools import tool, wayback
from warcio.archiveiterator import ArchiveIterator

pytestmark = pytest.mark.browser

DOC_PATHS = ["/static.html", "/js.html"]  # cited by the imported document
HAND_PATHS = ["/doc.pdf"]  # added by hand


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Two real runs over three sources: (site, config, store, document path, tmp dir)."""
    tmp = tmp_path_factory.mktemp("export")
    site = FixtureSite().start()
    store = tmp / "store"
    # Every run renders (no cheap re-checks), and run 2 sees other payloads (below): two
    # runs, two WARCs per source to export (an unchanged page's WARC is not stored twice).
    config = write_config(tmp / "c.toml", f"file://{store}", crawl_extra='recheck = "full"')
    doc = tmp / "article.md"
    doc.write_text("".join(f"See [this]({site.url(p)}).\n\n" for p in DOC_PATHS))
    res = run_cli(config, "import", str(doc))
    assert res.code == 0, res.err
    res = run_cli(config, "add", *[site.url(p) for p in HAND_PATHS])
    assert res.code == 0, res.err
    for run in range(2):
        if run == 1:
            site.pages["/style.css"] = (200, "text/css", b"body { color: #333 }", {})
            site.pages["/data.json"] = (200, "application/json", b'{"text": "Run two"}', {})
            site.pages["/doc.pdf"] = (200, "application/pdf", make_pdf("Second edition"), {})
        res = run_cli(config, "run-once", "--all")
        assert res.code == 0, res.err
    yield site, config, store, doc, tmp
    site.stop()


def _sources(config: Path) -> dict[str, str]:
    res = run_cli(config, "sources", "--json")
    assert res.code == 0, res.err
    return {r["url"]: r["id"] for r in json.loads(res.out)}


def _warc_captures(config: Path, site: FixtureSite, paths: list[str]) -> dict[str, dict]:
    """capture id -> capture record (with 'url'), for captures that hold a WARC."""
    out = {}
    for path in paths:
        for cap in history(config, site.url(path)):
            if "warc" in cap["artifacts"]:
                out[cap["id"]] = cap | {"url": site.url(path)}
    return out


def _export(config: Path, *args: str):
    return run_cli(config, "export", *args)


def test_warc_dir_files_are_the_stored_blobs(archive):
    site, config, _, _, tmp = archive
    out = tmp / "warcs"
    res = _export(config, "--warc", str(out))
    assert res.code == 0, res.err
    caps = _warc_captures(config, site, DOC_PATHS + HAND_PATHS)
    assert len(caps) == 6  # three sources, two runs
    ids = _sources(config)
    expected = {f"{ids[c['url']]}-{cid}.warc.gz": c for cid, c in caps.items()}
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for name, cap in expected.items():
        data = (out / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == cap["artifacts"]["warc"]["sha256"]


def test_document_selects_its_sources(archive):
    site, config, _, doc, tmp = archive
    out = tmp / "doc-warcs"
    res = _export(config, "--warc", str(out), "--latest", str(doc))
    assert res.code == 0, res.err
    ids = _sources(config)
    names = sorted(p.name.split("-")[0] for p in out.iterdir())
    assert names == sorted(ids[site.url(p)] for p in DOC_PATHS)


@pytest.fixture(scope="module")
def wacz(archive):
    _, config, _, _, tmp = archive
    path = tmp / "all.wacz"
    res = _export(config, "--wacz", str(path))
    assert res.code == 0, res.err
    return path


def test_wacz_passes_py_wacz_validate(wacz):
    proc = subprocess.run(
        [str(tool("wacz")), "validate", "--file", str(wacz)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_wacz_datapackage_hashes_match_members(wacz):
    with zipfile.ZipFile(wacz) as zf:
        names = set(zf.namelist())
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        package_bytes = zf.read("datapackage.json")
        package = json.loads(package_bytes)
        digest = json.loads(zf.read("datapackage-digest.json"))
        assert package["profile"] == "data-package" and package["wacz_version"] == "1.1.1"
        listed = {r["path"] for r in package["resources"]}
        assert listed == names - {"datapackage.json", "datapackage-digest.json"}
        assert {"indexes/index.cdxj", "pages/pages.jsonl", "archive/data-0.warc.gz"} <= listed
        for r in package["resources"]:
            data = zf.read(r["path"])
            assert r["hash"] == "sha256:" + hashlib.sha256(data).hexdigest(), r["path"]
            assert r["bytes"] == len(data)
        assert digest["hash"] == "sha256:" + hashlib.sha256(package_bytes).hexdigest()


def test_wacz_pages_list_each_capture(archive, wacz):
    site, config, _, _, _ = archive
    caps = _warc_captures(config, site, DOC_PATHS + HAND_PATHS)
    with zipfile.ZipFile(wacz) as zf:
        lines = zf.read("pages/pages.jsonl").decode().splitlines()
    header, *pages = [json.loads(x) for x in lines]
    assert header == {"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}
    assert {p["id"] for p in pages} == set(caps) and len(pages) == len(caps)
    for page in pages:
        assert page["url"] == caps[page["id"]]["url"]
        assert page["ts"] == caps[page["id"]]["captured_at"]
    titles = {p["url"]: p["title"] for p in pages}
    assert titles[site.url("/static.html")] == "Security alert"


def test_wacz_cdxj_offsets_point_at_their_records(wacz):
    with zipfile.ZipFile(wacz) as zf:
        lines = zf.read("indexes/index.cdxj").decode().splitlines()
        warcs = {n.rsplit("/", 1)[-1]: zf.read(n) for n in zf.namelist() if n.endswith(".gz")}
    assert lines == sorted(lines) and len(lines) > 6
    for line in lines:
        _key, ts, blob = line.split(" ", 2)
        entry = json.loads(blob)
        assert len(ts) == 14 and ts.isdigit()
        start = int(entry["offset"])
        chunk = warcs[entry["filename"]][start : start + int(entry["length"])]
        [record] = list(ArchiveIterator(io.BytesIO(chunk)))
        assert record.rec_headers.get_header("WARC-Target-URI") == entry["url"]
        assert record.rec_type in ("response", "resource")


def test_latest_has_one_page_per_source(archive):
    _, config, _, _, tmp = archive
    path = tmp / "latest.wacz"
    res = _export(config, "--wacz", str(path), "--latest")
    assert res.code == 0, res.err
    with zipfile.ZipFile(path) as zf:
        pages = zf.read("pages/pages.jsonl").decode().splitlines()[1:]
    assert len(pages) == 3  # fewer than the six of two runs
    assert len({json.loads(p)["url"] for p in pages}) == 3


def test_pywb_replays_the_exported_warc(archive, tmp_path):
    site, config, _, _, _ = archive
    url = site.url("/static.html")
    out = tmp_path / "warcs"
    res = _export(config, "--warc", str(out), "--latest", url)
    assert res.code == 0, res.err
    [warc] = list(out.iterdir())
    [cap] = history(config, url)[-1:]
    ts = cap["captured_at"][:19].replace("-", "").replace(":", "").replace("T", "")
    root = tmp_path / "pywb"
    root.mkdir()
    for args in (["init", "coll"], ["add", "coll", str(warc)]):
        proc = subprocess.run(
            [str(tool("wb-manager")), *args], cwd=root, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    with wayback(root) as port:
        replay = f"http://127.0.0.1:{port}/coll/{ts}id_/{url}"
        with urllib.request.urlopen(replay, timeout=30) as resp:
            assert resp.status == 200
            assert resp.read() == site.pages["/static.html"][2]


def test_unknown_url_exits_3_naming_it(archive):
    _, config, _, _, tmp = archive
    res = _export(config, "--warc", str(tmp / "x"), "http://example.invalid/never-added")
    assert res.code == 3
    assert "http://example.invalid/never-added" in res.err


@pytest.mark.parametrize("both", [True, False])
def test_both_or_neither_output_is_a_usage_error(archive, both):
    _, config, _, _, tmp = archive
    args = ["--warc", str(tmp / "w"), "--wacz", str(tmp / "w.wacz")] if both else []
    res = _export(config, *args)
    assert res.code == 2
    assert not (tmp / "w").exists() and not (tmp / "w.wacz").exists()


@pytest.mark.parametrize("kind", ["--warc", "--wacz"])
def test_unwritable_output_is_one_line_and_writes_nothing(archive, tmp_path, kind):
    _, config, _, _, _ = archive
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    target = blocker / ("out" if kind == "--warc" else "out.wacz")
    res = _export(config, kind, str(target))
    assert res.code != 0
    assert res.err.strip() and len(res.err.strip().splitlines()) == 1, res.err
    assert str(target.parent) in res.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_failure_midway_leaves_no_wacz(archive, tmp_path):
    """A corrupt WARC blob (in a copy of the store) stops the export: no file is left."""
    site, _, store, _, _ = archive
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    config2 = write_config(tmp_path / "c.toml", f"file://{copy}")
    [cap] = history(config2, site.url("/js.html"))[-1:]
    sha = cap["artifacts"]["warc"]["sha256"]
    blob = copy / "blobs" / "sha256" / sha[:2] / sha[2:4] / sha
    blob.write_bytes(blob.read_bytes()[:-10])
    out = tmp_path / "out"
    out.mkdir()
    res = run_cli(config2, "export", "--wacz", str(out / "x.wacz"))
    assert res.code == 4, res.err
    assert list(out.iterdir()) == []


def test_wacz_splits_warcs_past_the_member_limit(archive, tmp_path):
    """A small member limit rolls over to archive/data-1.warc.gz...; still valid."""
    from crawler.app import App
    from crawler.config import load_config
    from crawler.export import choose_captures, export_wacz, resolve_sources

    _, config, _, _, _ = archive
    app = App.open(load_config(str(config)))
    try:
        chosen = choose_captures(app, resolve_sources(app, []), latest=False)
        path = tmp_path / "split.wacz"
        export_wacz(app, chosen, path, limit=1)
    finally:
        app.close()
    with zipfile.ZipFile(path) as zf:
        warcs = [n for n in zf.namelist() if n.startswith("archive/")]
    assert len(warcs) == len(chosen) == 6
    proc = subprocess.run(
        [str(tool("wacz")), "validate", "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
