"""How uvicorn serves the API: its websocket protocol, made to close stalled
screens with the hub's code, and its loggers, kept free of tokens.

A screen that stops reading is detected twice: by uvicorn's keepalive (a
ping unanswered for ``ws_ping_timeout`` s) and by the hub (a send blocked for
``stall_timeout`` s). Stock uvicorn closes the first case with 1011
("internal error"), and holds back the hub's 1013 close frame in the second
until the peer reads again, which it will not: it then sees 1006. Both are
the same event, a client that does not keep up, and get the documented 1013
("try again later"): the page reconnects and resumes.
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from ioc.settings import Settings
from ui_feed.auth import redact_tokens
from ui_feed.hub import CLOSE_TRY_AGAIN

LOGGERS = ("uvicorn.access", "uvicorn.error")


class StalledPeerProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websocket protocol, closing stalled peers with 1013."""

    def keepalive_timeout(self) -> None:
        # uvicorn's own, with 1013 for 1011: the peer stopped answering pings
        self.pong_timer = None
        self.pending_ping_payload = None
        if self.close_sent or self.transport.is_closing():
            return
        self.conn.fail(CLOSE_TRY_AGAIN, "try again later")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] == "websocket.close" and self.handshake_complete and not self.close_sent:
            # A close must not wait for the peer to drain what is buffered: the
            # hub closes exactly the peers that stopped reading. The frame goes
            # after the buffered data, and nothing is sent after it.
            self.writable.set()
        await super().send(message)


def install_log_redaction() -> None:
    """Redact ``?token=`` values in every uvicorn log line (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if redact_tokens not in logger.filters:
            logger.addFilter(redact_tokens)


def server_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """uvicorn's configuration for the API (``overrides`` for tests)."""
    options: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_level": settings.log_level.lower(),
        "ws": StalledPeerProtocol,
        "lifespan": "on",
        **overrides,
    }
    config = uvicorn.Config(app, **options)
    install_log_redaction()  # after Config, which configures uvicorn's loggers
    return config
