"""The web UI served for tests: waitress on 127.0.0.1, a free port, in a thread."""

from __future__ import annotations

import threading

from waitress import create_server


class Served:
    """A waitress server for one Flask app on 127.0.0.1:<free port>, in a thread."""

    def __init__(self, app) -> None:
        self.app = app
        self.server = create_server(app, host="127.0.0.1", port=0, threads=4)
        self.base = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.close()
        self.app.extensions["citearchive"].close()
