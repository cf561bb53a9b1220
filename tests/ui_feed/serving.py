"""The API served by uvicorn as ``ioc api`` serves it (``server_config``), in
a thread, for tests that need real sockets: websocket handshakes, log lines."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from ioc.settings import Settings
from tests.conftest import free_port, wait_for_port
from ui_feed.app import create_app
from ui_feed.server import server_config


@contextmanager
def serving(
    settings: Settings | None = None, app: FastAPI | None = None, **overrides: Any
) -> Iterator[tuple[str, FastAPI]]:
    """``(base URL, app)`` while the app is served; lifespan off unless asked."""
    port = free_port()
    settings = (settings or Settings()).model_copy(update={"api_port": port})
    app = app or create_app(settings)
    options = {"lifespan": "off", "log_level": "info", **overrides}
    server = uvicorn.Server(server_config(app, settings, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port("127.0.0.1", port)
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)
