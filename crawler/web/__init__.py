"""The read-only web UI and Memento (RFC 7089) endpoints: ``create_app(config) -> Flask``."""

from crawler.web.app import create_app

__all__ = ["create_app"]
