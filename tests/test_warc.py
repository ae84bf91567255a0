"""The WARC writer on its own: records, decoded bodies, and `warcio check`."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from storage.warc import Exchange, Resource, build_warc


def _warc() -> bytes:
    page = Exchange(
        url="https://e.org/a?x=1",
        request_headers=[("User-Agent", "t")],
        status=200,
        response_headers=[
            ("Content-Type", "text/html"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", "9"),
        ],
        body=b"<p>hello</p>",
        server_ip="93.184.216.34",
    )
    failed = Exchange(url="https://e.org/never", error="net::ERR_FAILED")
    return build_warc(
        [page, failed],
        [Resource("urn:dom:https://e.org/a?x=1", "text/html", b"<p>")],
        captured_at="2026-11-27T14:00:00.000001Z",
        page_url="https://e.org/a?x=1",
    )


def test_records_and_decoded_body():
    records, bodies = [], []
    for record in ArchiveIterator(io.BytesIO(_warc())):
        records.append(record)
        bodies.append(record.content_stream().read())
    assert [r.rec_type for r in records] == ["warcinfo", "response", "request", "resource"]
    response = records[1]
    assert response.rec_headers.get_header("WARC-IP-Address") == "93.184.216.34"
    assert response.http_headers.get_header("Content-Encoding") is None
    assert response.http_headers.get_header("Content-Length") == str(len(b"<p>hello</p>"))
    assert bodies[1] == b"<p>hello</p>"
    assert records[2].http_headers.protocol == "GET"
    assert records[2].rec_headers.get_header(
        "WARC-Concurrent-To"
    ) == response.rec_headers.get_header("WARC-Record-ID")
    assert records[0].rec_headers.get_header("WARC-Type") == "warcinfo"
    assert _warc()[:2] == b"\x1f\x8b"


def test_warcio_check_passes(tmp_path):
    path = tmp_path / "t.warc.gz"
    path.write_bytes(_warc())
    check = subprocess.run(
        [Path(sys.executable).parent / "warcio", "check", "-v", str(path)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert gzip.decompress(path.read_bytes()).startswith(b"WARC/1.1\r\n")
