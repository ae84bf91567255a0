"""`citearchive verify [--repair]` over a store built without a browser, on disk and on S3.

Each test damages the archive the way a crash, a bad disk or a hand edit would, through the
store itself, and checks the command names the damage, the source and its exit code.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from cliutil import Result, run_cli, write_config
from fixture_site import html

from crawler.app import App
from crawler.archiving import store_capture
from crawler.cli import main
from crawler.config import load_config
from crawler.items import CaptureItem
from crawler.sources import Citation, register
from storage.archive import blob_key, canonical_json

URLS = ["https://example.org/alert", "https://example.org/other"]
TIMES = ["2026-01-02T10:00:00.000000Z", "2026-01-05T12:30:00.500000Z", "2026-01-07T08:00:00Z"]


@pytest.fixture
def archive_site(tmp_path, store_url):
    """Two sources, three captures each; returns (config, app) with the app open."""
    config = write_config(tmp_path / "c.toml", store_url)
    app = App.open(load_config(str(config)))
    records = register(app.archive, app.index, [Citation(u) for u in URLS])
    for record in records:
        for n, when in enumerate(TIMES):
            body = f"<article><p>Version {n} of {record['canonical_url']}.</p></article>"
            item = CaptureItem(
                source_id=record["id"],
                url=record["canonical_url"],
                captured_at=when,
                final_url=record["canonical_url"],
                http_status=200,
                media_type="text/html",
                raw=html("Alert", body),
                dom=html("Alert", body),
            )
            store_capture(app.archive, app.index, item)
    yield config, app
    app.close()


@pytest.fixture
def cli(capsys):
    """The command line in this process (its start-up costs seconds; one test runs it for
    real in a subprocess)."""

    def run(config, *args: str) -> Result:
        code = main(["--config", str(config), *args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def verify_json(cli):
    def run(config, *args):
        res = cli(config, "verify", "--json", *args)
        return res, json.loads(res.out)

    return run


def manifests(app, url):
    sid = app.source_for(url).id
    return sid, list(app.archive.iter_manifests(sid))


def test_a_clean_archive_verifies(archive_site, verify_json):
    config, app = archive_site
    blobs = len(list(app.archive.store.list("blobs/")))
    assert blobs == 12  # per capture: raw (= dom) and text
    res = run_cli(config, "verify")
    assert res.code == 0, res.err
    assert res.out.splitlines() == [
        "verify: 2 sources, 6 manifests, 12 blobs checked: clean; 0 orphan blob(s), 0 unindexed"
    ]
    res, report = verify_json(config)
    assert res.code == 0 and report["clean"] is True
    assert (report["sources"], report["manifests"], report["damage"]) == (2, 6, [])


def test_a_corrupt_blob_byte_is_reported(archive_site, cli, verify_json):
    config, app = archive_site
    sid, stored = manifests(app, URLS[0])
    sha = stored[1].manifest["artifacts"]["text"]["sha256"]
    data = bytearray(app.archive.store.get(blob_key(sha)))
    data[10] ^= 0x01
    app.archive.store.put(blob_key(sha), bytes(data))
    res = cli(config, "verify")
    assert res.code == 7, res.out
    assert "DAMAGED: 1 problem(s) in 1 source(s), 0 with a damaged latest capture" in res.out
    [line] = [x for x in res.out.splitlines() if x.startswith("damaged")]
    assert line.startswith(f"damaged corrupt_blob: source {sid} {URLS[0]}: {stored[1].key}")
    assert f"artifact 'text': blob {sha} is corrupt" in line


def test_a_deleted_blob_of_the_latest_capture_names_the_source(archive_site, cli, verify_json):
    config, app = archive_site
    sid, stored = manifests(app, URLS[1])
    sha = stored[-1].manifest["artifacts"]["text"]["sha256"]
    app.archive.store.delete(blob_key(sha))
    res, report = verify_json(config)
    assert res.code == 7
    assert report["latest_damaged"] == [sid] and report["damaged_sources"] == [sid]
    [problem] = report["damage"]
    assert problem["kind"] == "missing_blob" and problem["latest"] is True
    assert problem["url"] == URLS[1] and problem["key"] == stored[-1].key
    assert "[latest capture]" in cli(config, "verify").out


def test_an_edited_manifest_breaks_the_chain(archive_site, cli, verify_json):
    config, app = archive_site
    _, stored = manifests(app, URLS[0])
    edited = dict(stored[0].manifest, verdict="gone")
    app.archive.store.put(stored[0].key, canonical_json(edited))
    res, report = verify_json(config)
    assert res.code == 7
    kinds = {(p["kind"], p["key"]) for p in report["damage"]}
    # The index recorded the edited manifest's old bytes; its successor links to them too.
    assert kinds == {("changed", stored[0].key), ("chain", stored[1].key)}
    assert report["latest_damaged"] == []


def test_an_edited_latest_manifest_is_caught_by_the_index(archive_site, cli, verify_json):
    # No successor links to the latest manifest: only the hash the index recorded shows it.
    config, app = archive_site
    sid, stored = manifests(app, URLS[0])
    edited = dict(stored[-1].manifest, http_status=404)
    app.archive.store.put(stored[-1].key, canonical_json(edited))
    res, report = verify_json(config)
    assert res.code == 7
    [problem] = report["damage"]
    assert (problem["kind"], problem["latest"], problem["source_id"]) == ("changed", True, sid)


def test_a_removed_manifest_is_lost_and_breaks_the_chain(archive_site, cli, verify_json):
    config, app = archive_site
    _, stored = manifests(app, URLS[1])
    app.archive.store.delete(stored[1].key)
    res, report = verify_json(config)
    assert res.code == 7
    kinds = {(p["kind"], p["key"]) for p in report["damage"]}
    assert kinds == {("lost", stored[1].key), ("chain", stored[2].key)}


def test_a_malformed_manifest_is_reported_and_keeps_the_orphans(archive_site, cli, verify_json):
    config, app = archive_site
    _, stored = manifests(app, URLS[0])
    app.archive.store.put(stored[2].key, b"{not json")
    orphan = app.archive.put_blob(b"left by a crash")
    res, report = verify_json(config, "--repair")
    assert res.code == 7
    assert [(p["kind"], p["latest"]) for p in report["damage"]] == [("malformed", True)]
    assert report["removed"] == [] and "malformed manifest" in report["repair_refused"]
    assert app.archive.has_blob(orphan.sha256)


def test_orphan_blobs_are_reported_and_removed_only_with_repair(archive_site, cli, verify_json):
    config, app = archive_site
    orphans = sorted(app.archive.put_blob(b"orphan %d" % n).sha256 for n in range(2))
    before = sorted(app.archive.store.list("blobs/"))
    res = cli(config, "verify")
    assert res.code == 0, res.out  # leftovers of a crash are not damage
    assert "clean; 2 orphan blob(s), 0 unindexed" in res.out
    for sha in orphans:
        assert f"orphan blob {sha}: no manifest names it; kept (remove with --repair)" in res.out
    assert sorted(app.archive.store.list("blobs/")) == before

    res, report = verify_json(config, "--repair")
    assert res.code == 0 and report["removed"] == orphans
    after = sorted(app.archive.store.list("blobs/"))
    assert after == sorted(set(before) - {blob_key(s) for s in orphans})
    res, report = verify_json(config)
    assert res.code == 0 and report["orphans"] == [] and report["blobs"] == 12
    assert report["stored_blobs"] == 12


def test_an_unindexed_manifest_is_recorded_by_repair(archive_site, cli, verify_json):
    # What a kill between the manifest and the index row leaves: the index lags the store.
    config, app = archive_site
    _, stored = manifests(app, URLS[0])
    rebuilt = app.index.dump()
    with app.index.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM captures WHERE id = ?", (stored[-1].manifest["id"],))
    res, report = verify_json(config)
    assert res.code == 0 and report["unindexed"] == [stored[-1].key]
    res, report = verify_json(config, "--repair")
    assert res.code == 0 and report["indexed"] == [stored[-1].key]
    assert app.index.dump() == rebuilt


def test_repair_waits_for_no_run(archive_site, cli, verify_json):
    config, app = archive_site
    with app.run_lock():
        res = cli(config, "verify", "--repair")
    assert res.code == 5 and "another citearchive run is in progress" in res.err
    assert cli(config, "verify").code == 0  # checking alone needs no lock


def test_blob_hashes_are_checked_against_the_manifest_size(archive_site, cli, verify_json):
    config, app = archive_site
    _, stored = manifests(app, URLS[0])
    manifest = dict(stored[-1].manifest)
    ref = dict(manifest["artifacts"]["dom"], size=manifest["artifacts"]["dom"]["size"] + 1)
    manifest["artifacts"] = dict(manifest["artifacts"], dom=ref)
    app.archive.store.put(stored[-1].key, canonical_json(manifest))
    res, report = verify_json(config)
    assert res.code == 7
    kinds = sorted(p["kind"] for p in report["damage"])
    assert kinds == ["changed", "size"]
    assert hashlib.sha256(app.archive.store.get(stored[-1].key)).hexdigest() != stored[-1].sha256


def test_a_corrupt_orphan_is_damage_and_repair_removes_it(archive_site, cli, verify_json):
    # A half-written object under a blob's name would be trusted by the next put_blob of
    # the same bytes (it skips what exists): it must not pass as a harmless orphan.
    config, app = archive_site
    data = b"the full bytes of a blob"
    sha = hashlib.sha256(data).hexdigest()
    app.archive.store.put(blob_key(sha), data[:10])
    res, report = verify_json(config)
    assert res.code == 7 and report["orphans"] == [sha]
    [problem] = report["damage"]
    assert (problem["kind"], problem["source_id"]) == ("corrupt_blob", "-")
    assert report["damaged_sources"] == []
    line = cli(config, "verify").out.splitlines()[1]
    assert problem["detail"].startswith(f"orphan: blob {sha} is corrupt")
    assert line == f"damaged corrupt_blob: {blob_key(sha)}: {problem['detail']}"
    res, report = verify_json(config, "--repair")
    assert report["removed"] == [sha] and not app.archive.has_blob(sha)
    assert cli(config, "verify").code == 0


def test_a_run_records_stored_captures_the_index_lacks(archive_site):
    """A kill between a manifest and its index row: the next run records the manifest
    before it selects what is due, so the source is not captured twice for one due time."""
    from crawler.reconcile import record_unindexed
    from storage.runlog import RunLog

    _, app = archive_site
    source = app.source_for(URLS[0])
    latest = app.index.captures(source.id)[-1]
    with app.index.engine.begin() as conn:  # the index row the kill prevented
        conn.exec_driver_sql("DELETE FROM captures WHERE id = ?", (latest.id,))
        app.index.refresh_all_sources(conn)
    assert app.index.get_capture(latest.id) is None
    other = app.source_for(URLS[1])
    assert record_unindexed(app.archive, app.index, [source.id, other.id]) == 1
    assert app.index.get_capture(latest.id) == latest
    assert app.index.get_source(source.id).last_captured_at == latest.captured_at
    assert record_unindexed(app.archive, app.index, [source.id, other.id]) == 0
    # A run left "running" by a killed process is closed by the next one.
    runs = RunLog(app.index)
    runs.start("run-once", 2)
    assert runs.close_abandoned() == 1
    assert [r.status for r in runs.recent()] == ["killed"]
