"""The web UI served for tests: waitress on 127.0.0.1, a free port, in a thread."""

from __future__ import annotations

import threading

from waitress import create_server
from waitress.wasyncore import close_all


class Served:
    """A waitress server for one Flask app on 127.0.0.1:<free port>, in a thread."""

    def __init__(self, app) -> None:
        self.app = app
        self.server = create_server(app, host="127.0.0.1", port=0, threads=4)
        self.base = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        # Requests in hand finish first (they wake the loop when done), then the sockets are
        # closed from inside the loop (a thunk its trigger runs): closed from this thread,
        # they raced the loop's select() (EBADF in the server thread).
        self.server.task_dispatcher.shutdown()
        self.server.trigger.pull_trigger(lambda: close_all(self.server._map))
        self.thread.join(timeout=10)
        if self.thread.is_alive():
            raise RuntimeError(f"the web UI server at {self.base} did not stop")
        self.app.extensions["citearchive"].close()
