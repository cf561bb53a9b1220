"""How uvicorn serves the API: its websocket protocol, made to close stalled
screens with the hub's code, and its loggers, kept free of tokens.

Hub messages skip the ASGI send path (``DirectSend``): each message is
framed, and compressed, once for every screen that negotiated the same
compression, and written to each screen's socket from ``Hub.publish``
without waking a task per screen. That is only sound when no screen's
compressor carries context from one message to the next, so the server
declines context takeover (``server_no_context_takeover``): a KPI update
compresses to about 1.2 kB instead of 0.1 kB, and costs one compression per
update instead of one per screen. Control frames (pings, closes) still go
through the connection's protocol object, which keeps its state.

A screen that stops reading is detected twice: by uvicorn's keepalive (a
ping unanswered for ``ws_ping_timeout`` s) and by the hub (a send blocked for
``stall_timeout`` s). Stock uvicorn closes the first case with 1011
("internal error"), and holds back the hub's 1013 close frame in the second
until the peer reads again, which it will not: it then sees 1006. Both are
the same event, a client that does not keep up, and get the documented 1013
("try again later"): the page reconnects and resumes. Such a peer never lets
its socket flush either: it is cut ``close_grace`` s after the close (and
after the API's own shutdown close), and its pings are not answered while
its socket is full (uvicorn wrote each pong whatever the buffer held).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import uvicorn
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected
from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import NegotiationError
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.typing import ExtensionParameter

from ioc.settings import Settings
from ui_feed.auth import redact_tokens
from ui_feed.screen import CLOSE_TRY_AGAIN, Frame

LOGGERS = ("uvicorn.access", "uvicorn.error")
# where a websocket's scope carries its DirectSend (ui_feed.app passes it on)
DIRECT_SEND = "ioc.direct_send"
WS_MAX_SIZE = 1 << 20
# what a screen's connection raises when the peer has left (the hub's disconnects)
DISCONNECTS = (WebSocketDisconnect, WebSocketDisconnected, OSError)
# bytes of a screen's input given to the websocket parser at a time
PARSE_SLICE = 2048


class DirectSend:
    """Hub messages written straight to one screen's socket.

    ``key`` names how this connection frames a message (its compression
    parameters): every connection with the same key gets the same bytes, so
    ``Frame.wire`` builds them once."""

    def __init__(self, protocol: StalledPeerProtocol, key: tuple[Any, ...]) -> None:
        self.protocol = protocol
        self.key = key

    def is_open(self) -> bool:
        p = self.protocol
        return not (p.close_sent or p.disconnected or p.transport.is_closing())

    def ready(self) -> bool:
        """Open, and the socket's buffer below its high-water mark."""
        return self.protocol.writable.is_set() and self.is_open()

    def write(self, frame: Frame) -> None:
        self.protocol.transport.write(frame.wire(self.key, self._frame))

    async def drained(self) -> None:
        await self.protocol.writable.wait()

    def _frame(self, payload: bytes) -> bytes:
        extensions = self.protocol.conn.extensions
        return WireFrame(Opcode.TEXT, payload).serialize(mask=False, extensions=extensions)


def frame_key(extensions: list[Any]) -> tuple[Any, ...] | None:
    """How a connection with these negotiated extensions frames a message,
    or None when its frames cannot be shared (a compressor with context)."""
    key: list[Any] = []
    for ext in extensions:
        if not (isinstance(ext, PerMessageDeflate) and ext.local_no_context_takeover):
            return None
        key.append((ext.local_max_window_bits, tuple(sorted(ext.compress_settings.items()))))
    return tuple(key)


class ScreenDeflateFactory(ServerPerMessageDeflateFactory):
    """permessage-deflate as the server offers it, declining a request for
    an 8-bit window (RFC 7692 allows it; zlib cannot compress raw deflate with
    one, and the first message to that screen would fail): that screen gets
    plain frames."""

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, extension = super().process_request_params(params, accepted_extensions)
        if extension.local_max_window_bits < 9:
            raise NegotiationError("server_max_window_bits below 9 is not supported")
        return response, extension


INVALID_UTF8 = "Invalid UTF-8 sequence received from client"


def _is_utf8(frames: list[bytes]) -> bool:
    try:
        b"".join(frames).decode()
    except UnicodeDecodeError:
        return False
    return True


class StalledPeerProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websocket protocol, closing stalled peers with 1013
    and offering the hub a direct send."""

    # after a close, how long the socket may take to flush before it is aborted
    close_grace = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = self.close_grace
        self.abort_timer: asyncio.TimerHandle | None = None
        self.unread = bytearray()  # received, not yet given to the parser
        if self.config.ws_per_message_deflate:
            # uvicorn's settings, without the server's compression context
            self.conn.available_extensions = [
                ScreenDeflateFactory(
                    server_no_context_takeover=True,
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    compress_settings={"memLevel": 5},
                )
            ]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:
            key = frame_key(self.conn.extensions)
            if key is not None:
                self.scope["extensions"][DIRECT_SEND] = DirectSend(self, key)  # type: ignore[assignment]

    def keepalive_timeout(self) -> None:
        # uvicorn's own, with 1013 for 1011: the peer stopped answering pings
        self.pong_timer = None
        self.pending_ping_payload = None
        if self.close_sent or self.transport.is_closing():
            return
        self.conn.fail(CLOSE_TRY_AGAIN, "try again later")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.writable.set()  # a send waiting for the peer to drain learns it is over
        self.close_or_abort()

    def close_or_abort(self) -> None:
        """Close the socket, and abort it if what it holds has not gone out
        within the grace: a peer that reads nothing never lets it flush, and
        would hold the buffer (and the connection) for as long as it stays."""
        self.transport.close()
        self.abort_later()

    def abort_later(self) -> None:
        if self.abort_timer is None:
            self.abort_timer = self.loop.call_later(self.close_timeout, self.transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.abort_timer is not None:
            self.abort_timer.cancel()
        self.unread.clear()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        # the API stopping: its close frame must not wait forever either
        if self.handshake_complete and not self.close_sent and self.conn.state is not State.OPEN:
            # the peer started the close (uvicorn would send 1012 on a closing
            # connection, raise, and leave the rest of the shutdown undone)
            self.stop_keepalive()
            self.transport.close()
        else:
            super().shutdown()
        self.abort_later()

    def data_received(self, data: bytes) -> None:
        # Parsed a slice at a time, and only while no message waits for the
        # app: one read of compressed frames (256 kB) could otherwise inflate
        # hundreds of 1 MiB messages in one go, holding the loop for seconds.
        # uvicorn pauses reading while a message waits, so this holds at most
        # one read; ``receive`` goes on once the app has taken the message.
        self.unread += data
        self.parse_unread()

    def parse_unread(self) -> None:
        # after our close, the peer's close reply must still be read
        while self.unread and (self.queue.empty() or self.close_sent):
            piece = bytes(self.unread[:PARSE_SLICE])
            del self.unread[:PARSE_SLICE]
            super().data_received(piece)
        if self.transport.is_closing():
            # closed by the peer's close frame or a protocol error, with plain
            # transport.close(): the same grace applies
            self.abort_later()

    def send_receive_event_to_app(self) -> None:
        if self.conn.state is not State.OPEN:
            # The peer's close came in the same read as this message and was
            # answered already: the message has no one to go to, and uvicorn's
            # 1007 for one that is not UTF-8 would raise on a closing connection.
            self.frames = []
            return
        if self.curr_msg_data_type == "text" and not _is_utf8(self.frames):
            # uvicorn closes with 1007 too, but logs the client's fault as an
            # error with a traceback: one per junk message buries our own
            self.frames = []
            self.logger.warning("%s: closed with 1007", INVALID_UTF8)
            self.conn.send_close(1007)
            self.handle_parser_exception()
            return
        super().send_receive_event_to_app()

    async def receive(self) -> ASGIReceiveEvent:
        message = await super().receive()
        if self.unread and self.queue.empty():
            # on the next turn of the loop: other screens run between two
            # messages of one that sends many
            self.loop.call_soon(self.parse_unread)
        return message

    async def run_asgi(self) -> None:
        await super().run_asgi()
        if self.transport.is_closing():
            self.abort_later()

    def handle_ping(self) -> None:
        # uvicorn writes each pong whatever the socket holds: a peer sending
        # pings and reading nothing grew the API's memory without bound. While
        # the socket is full, or closing, the answer is dropped (RFC 6455 lets an
        # endpoint answer only the latest ping); the keepalive closes a peer
        # that stays so.
        answer = b"".join(self.conn.data_to_send())
        if self.writable.is_set() and not (self.close_sent or self.transport.is_closing()):
            self.transport.write(answer)

    async def send(self, message: ASGISendEvent) -> None:
        closing = message["type"] == "websocket.close" and not self.close_sent
        if closing and self.handshake_complete:
            # A close must not wait for the peer to drain what is buffered: the
            # hub closes exactly the peers that stopped reading. The frame goes
            # after the buffered data, and nothing is sent after it.
            self.writable.set()
        await super().send(message)
        if closing and self.unread:
            self.parse_unread()
        if closing and self.close_timer is not None:
            # uvicorn closes the socket when the peer has not answered the
            # close within close_timeout; this also aborts it after as long again
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout, self.close_or_abort)


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
        # a screen sends subscriptions, not data: 1 MiB (after decompression)
        # holds a resume map of 20 000 channels; uvicorn's default is 16 MiB
        "ws_max_size": WS_MAX_SIZE,
        "lifespan": "on",
        **overrides,
    }
    config = uvicorn.Config(app, **options)
    install_log_redaction()  # after Config, which configures uvicorn's loggers
    return config
