"""`make bench`: capture a generated local site with citearchive and report the figures.

Serves N article-like pages on 127.0.0.1 (each with CSS, an image and text rendered by a
script), then runs the real command line as a user would: a first capture of every page,
then an unchanged re-check. Prints the times, pages/min, the re-check/first ratio and the
store's size, and writes them to bench/results/<UTC time>.json so runs can be compared.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
CSS = b"body{font-family:serif;max-width:40em;margin:auto} h1{color:#333}"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478"
    "9c63f8cfc000000301010018dd8db40000000049454e44ae426082"
)


def page(n: int) -> bytes:
    paragraphs = "".join(
        f"<p>Paragraph {i} of article {n}: officials said the alert was revised.</p>"
        for i in range(8)
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset=utf-8><title>Article {n}</title>"
        f"<link rel=stylesheet href=/style.css></head><body><article><h1>Article {n}</h1>"
        f"{paragraphs}<img src=/img.png alt=''><p id=late></p></article><script>"
        f"fetch('/data/{n}.json').then(r=>r.json()).then(d=>"
        f"document.getElementById('late').textContent=d.text)</script></body></html>"
    ).encode()


class Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path
        if path == "/style.css":
            body, ctype = CSS, "text/css"
        elif path == "/img.png":
            body, ctype = PNG, "image/png"
        elif path.startswith("/data/"):
            n = path.removeprefix("/data/").removesuffix(".json")
            body, ctype = json.dumps({"text": f"Late text {n}"}).encode(), "application/json"
        elif path.startswith("/a/"):
            body, ctype = page(int(path.removeprefix("/a/"))), "text/html; charset=utf-8"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def cli(config: Path, *args: str) -> float:
    exe = Path(sys.executable).parent / "citearchive"
    start = time.monotonic()
    subprocess.run(
        [str(exe), "--config", str(config), *args], check=True, stdout=subprocess.DEVNULL
    )
    return time.monotonic() - start


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        store = tmp_path / "store"
        config = tmp_path / "bench.toml"
        config.write_text(
            f'[store]\nurl = "file://{store}"\n[crawl]\nallow_private_networks = true\n'
            f"concurrency = {args.concurrency}\n"
            # One loopback host serves every page: politeness would measure the delay.
            f"[politeness]\nper_host_delay = 0\nper_host_concurrency = {args.concurrency}\n"
        )
        cli(config, "add", *[f"{base}/a/{n}" for n in range(args.pages)])
        first = cli(config, "run-once", "--all")
        blobs_first = tree_size(store / "blobs") + tree_size(store / "captures")
        recheck = cli(config, "run-once", "--all")
        blobs_after = tree_size(store / "blobs") + tree_size(store / "captures")
    server.shutdown()

    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "pages": args.pages,
        "concurrency": args.concurrency,
        "first_capture_s": round(first, 2),
        "first_pages_per_min": round(args.pages / first * 60, 1),
        "recheck_s": round(recheck, 2),
        "recheck_over_first": round(recheck / first, 3),
        "store_bytes_after_first": blobs_first,
        "store_bytes_per_page": blobs_first // args.pages,
        "bytes_added_per_unchanged_recheck": (blobs_after - blobs_first) // args.pages,
    }
    for key, value in results.items():
        print(f"{key:36} {value}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{results['when'].replace(':', '')}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
