"""An in-process collector for tests: the real app, writer and files, on uvicorn on loopback."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from flywheel_assets.collector.app import CollectorSettings, create_app
from flywheel_assets.collector.server import free_port, post_json

TOKEN = "collector-test-token-0123456789"
OTHER_TOKEN = "another-app-token-0123456789"


@dataclass
class InProcessCollector:
    url: str
    landing: Path
    server: uvicorn.Server
    thread: threading.Thread

    def post(self, endpoint: str, body, *, token: str = TOKEN, headers: dict | None = None):
        """(status, JSON body) of a POST."""
        return post_json(f"{self.url}{endpoint}", body, token, headers)[:2]

    def post_full(self, endpoint: str, body, *, token: str = TOKEN, headers: dict | None = None):
        """(status, JSON body, response headers) of a POST."""
        return post_json(f"{self.url}{endpoint}", body, token, headers)

    def stop(self) -> None:
        """A graceful stop: the writer publishes every spool file."""
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve_collector(landing: Path, spool: Path, **overrides) -> InProcessCollector:
    """Start the collector app over `landing` in a thread; settings as keyword arguments."""
    settings = CollectorSettings(
        landing=str(landing), tokens=[TOKEN, OTHER_TOKEN], spool_dir=spool, **overrides
    )
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the in-process collector did not start")
        time.sleep(0.02)
    return InProcessCollector(f"http://127.0.0.1:{port}", landing, server, thread)
