"""How uvicorn serves the API: a screen that stops reading is closed with
1013 ("try again later"), whichever of uvicorn's keepalive and the hub's
stall timer notices first. Real sockets, and a real websocket client that
stops reading: its receive queue holds one message, then it leaves the
socket alone until the server is done with the connection."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from ioc.settings import Settings
from tests.conftest import free_port
from ui_feed.app import create_app
from ui_feed.hub import Hub
from ui_feed.server import WS_MAX_SIZE, StalledPeerProtocol, server_config

TOKEN = "read-token-0123456"


async def until(check: Callable[[], bool]) -> None:
    while not check():  # noqa: ASYNC110 - the server exposes no event to wait on
        await asyncio.sleep(0.02)


async def close_code_of_a_stalled_screen(hub: Hub, **overrides: Any) -> int | None:
    """Serve the API on ``hub``; connect a screen that stops reading while
    alerts keep coming; once the server is done with the connection (its
    ASGI task ended), read everything: the close code at the end, or None
    when no close frame came (the screen sees 1006)."""
    port = free_port()
    settings = Settings(read_token=TOKEN, api_port=port)
    app = create_app(settings, hub=hub)
    server = uvicorn.Server(
        server_config(app, settings, lifespan="off", log_level="warning", **overrides)
    )
    serving = asyncio.create_task(server.serve())
    await until(lambda: server.started)
    hub.publish("alerts", "first", conflate=False)
    try:
        async with connect(
            f"ws://127.0.0.1:{port}/ws?token={TOKEN}", max_queue=1, ping_interval=None
        ) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channels": ["alerts"]}))
            await until(lambda: hub.stats()["subscriptions"] == 1)
            while server.server_state.tasks:
                # incompressible, so the socket's buffers fill, not only the queue
                hub.publish("alerts", os.urandom(32_000).hex(), conflate=False)
                await asyncio.sleep(0.01)
            try:
                while True:
                    await ws.recv()
            except ConnectionClosed as closed:
                return None if closed.rcvd is None else closed.rcvd.code
    finally:
        server.should_exit = True
        await serving


def run(coro: Any) -> Any:
    async def guarded() -> Any:
        return await asyncio.wait_for(coro, 60)  # a hang guard, not a timing assertion

    return asyncio.run(guarded())


def test_a_screen_that_stops_answering_pings_is_closed_with_1013() -> None:
    hub = Hub(heartbeat=3600, stall_timeout=3600)
    pings = {"ws_ping_interval": 0.2, "ws_ping_timeout": 0.2}
    assert run(close_code_of_a_stalled_screen(hub, **pings)) == 1013
    assert hub.stats()["dropped_slow"] == 0  # uvicorn's keepalive noticed, not the hub


def test_a_screen_whose_sends_stall_is_closed_with_1013() -> None:
    hub = Hub(heartbeat=3600, stall_timeout=0.2)
    assert run(close_code_of_a_stalled_screen(hub, ws_ping_interval=None)) == 1013
    assert hub.stats()["dropped_slow"] == 1


OFFERS: dict[str | None, dict[str, Any]] = {
    "deflate": {"compression": "deflate"},
    None: {"compression": None},
    # legal, but zlib cannot compress raw deflate in an 8-bit window
    "deflate-window-8": {
        "compression": None,
        "extensions": [ClientPerMessageDeflateFactory(server_max_window_bits=8)],
    },
}


async def what_screens_receive(hub: Hub, compressions: list[str | None]) -> list[list[Any]]:
    """Serve the API on ``hub``; one screen per entry of ``compressions``
    subscribes to a KPI channel and an alert stream, then 300 updates are
    published: the messages each screen received, decoded."""
    port = free_port()
    settings = Settings(read_token=TOKEN, api_port=port)
    server = uvicorn.Server(
        server_config(create_app(settings, hub=hub), settings, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    await until(lambda: server.started)
    hub.publish("kpi/province", {"n": 0}, conflate=True)
    try:
        screens = [
            await connect(f"ws://127.0.0.1:{port}/ws?token={TOKEN}", **OFFERS[c])
            for c in compressions
        ]
        for ws in screens:
            await ws.send(json.dumps({"op": "subscribe", "channels": ["kpi/*", "alerts"]}))
        await until(lambda: hub.stats()["subscriptions"] == len(screens))
        for n in range(1, 301):
            hub.publish("kpi/province", {"n": n, "text": "Hà Nội " * (n % 50)}, conflate=True)
            hub.publish("alerts", {"alert": n}, conflate=False)
            if n % 20 == 0:
                await asyncio.sleep(0)  # let the screens read now and then
        received: list[list[Any]] = []
        for ws in screens:
            messages = []
            while not messages or messages[-1].get("data") != {"alert": 300}:
                messages.append(json.loads(await ws.recv()))
            received.append(messages)
            await ws.close()
        return received
    finally:
        server.should_exit = True
        await serving


@pytest.mark.parametrize(
    "compressions",
    [["deflate", None, "deflate"], ["deflate", "deflate-window-8", None]],
    ids=["deflate-and-none", "a-window-zlib-cannot-compress-with"],
)
def test_screens_with_and_without_compression_receive_every_message_intact(
    compressions: list[str | None],
) -> None:
    # Chromium and the websockets client offer permessage-deflate: the hub's
    # messages are framed and compressed once and shared between screens. An
    # offer the server cannot honour is declined: that screen gets plain frames.
    hub = Hub(heartbeat=3600)
    received = run(what_screens_receive(hub, compressions))
    for messages in received:
        alerts = []
        for m in (m for m in messages if m["channel"] == "alerts"):
            # the stream's snapshot (its history) when it appears, then deltas
            alerts += [a["alert"] for a in (m["data"] if m["type"] == "snapshot" else [m["data"]])]
        assert alerts == list(range(1, 301))  # every item, in order
        kpis = [m["data"] for m in messages if m["channel"] == "kpi/province"]
        assert kpis[0]["n"] == 0 and kpis[-1] == {"n": 300, "text": "Hà Nội " * 0}
        assert [k["n"] for k in kpis] == sorted(k["n"] for k in kpis)  # never backwards


async def close_code_after_sending(size: int) -> int | None:
    """Serve the API; a screen sends a subscription padded to about ``size``
    bytes with a resume map, then a ping: the close code it gets, or None
    when it got its pong and stays open."""
    port = free_port()
    settings = Settings(read_token=TOKEN, api_port=port)
    hub = Hub(heartbeat=3600)
    server = uvicorn.Server(
        server_config(create_app(settings, hub=hub), settings, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    await until(lambda: server.started)
    resume = {f"sensor/{i:012d}": i for i in range(size // 30)}
    try:
        async with connect(f"ws://127.0.0.1:{port}/ws?token={TOKEN}", max_size=None) as ws:
            await ws.send(
                json.dumps({"op": "subscribe", "channels": ["sensor/*"], "resume": resume})
            )
            await ws.send(json.dumps({"op": "ping"}))
            try:
                while json.loads(await ws.recv())["type"] != "pong":
                    pass
                return None
            except ConnectionClosed as closed:
                return None if closed.rcvd is None else closed.rcvd.code
    finally:
        server.should_exit = True
        await serving


def test_a_message_past_the_size_limit_closes_the_screen_with_1009() -> None:
    assert run(close_code_after_sending(WS_MAX_SIZE // 2)) is None  # 17 000 channels resumed
    assert run(close_code_after_sending(WS_MAX_SIZE * 2)) == 1009


async def raw_screen(port: int, extensions: str = "") -> socket.socket:
    """A websocket client on a bare socket with a small receive buffer, that
    never reads after the handshake (frames are sent with ``frame``)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(
        sock,
        (
            f"GET /ws?token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            + (f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else "")
            + "\r\n"
        ).encode(),
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += await loop.sock_recv(sock, 1)  # byte by byte: leave the frames unread
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def frame(opcode: int, payload: bytes, *, compressed: bool = False) -> bytes:
    """One masked client frame (payload under 64 kB); ``compressed``:
    permessage-deflate without context."""
    first = 0x80 | opcode
    if compressed:
        deflate = zlib.compressobj(wbits=-15)
        payload = (deflate.compress(payload) + deflate.flush(zlib.Z_SYNC_FLUSH))[:-4]
        first |= 0x40  # RSV1: compressed
    size = len(payload)
    head = bytes([first, 0x80 | size]) if size < 126 else bytes([first, 0xFE]) + size.to_bytes(2)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def served(hub: Hub, **overrides: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    port = free_port()
    settings = Settings(read_token=TOKEN, api_port=port)
    server = uvicorn.Server(
        server_config(
            create_app(settings, hub=hub),
            settings,
            lifespan="off",
            log_level="warning",
            **overrides,
        )
    )
    serving = asyncio.create_task(server.serve())
    await until(lambda: server.started)
    return server, serving, port


async def stop(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    """Stop the server, first cutting what a failed test left open (uvicorn
    waits for every connection to go)."""
    server.should_exit = True
    for protocol in list(server.server_state.connections):
        protocol.transport.abort()  # type: ignore[attr-defined]
    await serving


def test_pings_from_a_screen_that_reads_nothing_do_not_pile_up_in_the_api() -> None:
    async def main() -> int:
        hub = Hub(heartbeat=3600)
        hub.publish("a", 0, conflate=False)
        server, serving, port = await served(hub, ws_ping_interval=None)
        try:
            sock = await raw_screen(port)
            pings = frame(0x9, b"p" * 125) * 40_000  # 5 MB of pongs to answer
            subscribe = frame(0x1, json.dumps({"op": "subscribe", "channels": ["a"]}).encode())
            await asyncio.get_running_loop().sock_sendall(sock, pings + subscribe)
            await until(lambda: hub.stats()["subscriptions"] == 1)  # every ping handled
            (screen,) = [p for p in server.server_state.connections if hasattr(p, "conn")]
            held: int = screen.transport.get_write_buffer_size()  # type: ignore[attr-defined]
            sock.close()
            return held
        finally:
            await stop(server, serving)

    # at most the high-water mark and one read's answers; all 5 MB before
    assert run(main()) < 1_000_000


def test_a_closed_screen_that_reads_nothing_is_aborted_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(StalledPeerProtocol, "close_grace", 0.2)

    async def main() -> None:
        hub = Hub(heartbeat=3600, stall_timeout=0.2)
        hub.publish("a", 0, conflate=False)
        server, serving, port = await served(hub, ws_ping_interval=None)
        try:
            sock, _ = await subscribed_raw_screen(server, hub, port)
            while hub.stats()["dropped_slow"] == 0:
                hub.publish("a", os.urandom(32_000).hex(), conflate=False)
                await asyncio.sleep(0.01)
            # closed with 1013 behind a buffer the screen never reads: the
            # connection goes once the grace is over, though the socket stays open
            await until(lambda: not server.server_state.connections)
            sock.close()
        finally:
            await stop(server, serving)

    run(main())


async def subscribed_raw_screen(
    server: uvicorn.Server, hub: Hub, port: int
) -> tuple[socket.socket, Any]:
    """A ``raw_screen`` subscribed to channel "a", and its server-side protocol."""
    sock = await raw_screen(port)
    subscribe = frame(0x1, json.dumps({"op": "subscribe", "channels": ["a"]}).encode())
    await asyncio.get_running_loop().sock_sendall(sock, subscribe)
    await until(lambda: hub.stats()["subscriptions"] == 1)
    (screen,) = [p for p in server.server_state.connections if hasattr(p, "writable")]
    return sock, screen


async def fill(hub: Hub, screen: Any) -> None:
    """Publish incompressible data on "a" until ``screen``'s socket is full."""
    while screen.writable.is_set():
        hub.publish("a", os.urandom(16_000).hex(), conflate=False)
        await asyncio.sleep(0.01)


def test_a_screen_that_closes_and_then_reads_nothing_is_cut_and_shutdown_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(StalledPeerProtocol, "close_grace", 0.2)

    async def main() -> None:
        hub = Hub(heartbeat=3600, stall_timeout=3600)
        hub.publish("a", 0, conflate=False)
        server, serving, port = await served(hub, ws_ping_interval=None)
        loop = asyncio.get_running_loop()
        close = frame(0x8, (1000).to_bytes(2))
        try:
            first, screen = await subscribed_raw_screen(server, hub, port)
            await fill(hub, screen)
            # it closes, then reads nothing: it is cut after the grace
            await loop.sock_sendall(first, close)
            await until(lambda: not server.server_state.connections)
            # a shutdown with such a screen still there (the grace is longer
            # now) ends cleanly, once the grace is over
            monkeypatch.setattr(StalledPeerProtocol, "close_grace", 2.0)
            second, screen = await subscribed_raw_screen(server, hub, port)
            await fill(hub, screen)
            await loop.sock_sendall(second, close)
            await until(lambda: screen.conn.state.name != "OPEN")
            server.should_exit = True
            await serving  # raised InvalidState: 1012 sent on a closing connection
            first.close()
            second.close()
        finally:
            await stop(server, serving)

    run(main())


def test_a_burst_of_compressed_messages_is_parsed_a_slice_at_a_time() -> None:
    async def main() -> int:
        hub = Hub(heartbeat=3600)
        server, serving, port = await served(hub, ws_ping_interval=None)
        try:
            sock = await raw_screen(port, "permessage-deflate; client_no_context_takeover")
            # 1 MiB of JSON each, about 1 kB on the wire
            big_ping = b'{"op": "ping"' + b" " * (WS_MAX_SIZE - 100) + b"}"
            burst = frame(0x1, big_ping, compressed=True) * 100
            await asyncio.get_running_loop().sock_sendall(sock, burst)
            (screen,) = [p for p in server.server_state.connections if hasattr(p, "queue")]
            waiting = 0
            while hub.stats()["messages_sent"] < 100:  # a pong per ping
                waiting = max(waiting, screen.queue.qsize())  # type: ignore[attr-defined]
                await asyncio.sleep(0)
            sock.close()
            return waiting
        finally:
            await stop(server, serving)

    # inflated and queued for the app a slice of input at a time, not a read at a time
    assert run(main()) <= 2  # what one 2 kB slice of input completes; a whole read before


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def first_answer_to(sent: bytes, log_to: logging.Handler | None = None) -> bytes:
    """Serve the API; a raw screen sends ``sent`` in one write: the first
    bytes it gets back. ``log_to`` joins ``uvicorn.error`` once the server's
    logging is set up (which replaces the handlers; uvicorn's loggers do not
    propagate to the root, where caplog listens)."""
    server, serving, port = await served(Hub(heartbeat=3600))
    if log_to is not None:
        logging.getLogger("uvicorn.error").addHandler(log_to)
    try:
        sock = await raw_screen(port)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, sent)
        async with asyncio.timeout(10):
            answer = await loop.sock_recv(sock, 64)
        sock.close()
        return answer
    finally:
        await stop(server, serving)
        if log_to is not None:
            logging.getLogger("uvicorn.error").removeHandler(log_to)


def test_a_text_message_that_is_not_utf8_closes_the_screen_with_1007_and_logs_one_line() -> None:
    logged = Records()
    answer = run(first_answer_to(frame(0x1, b'{"op":"ping","x":"\xff\xfe"}'), logged))
    assert answer[:1] == b"\x88" and int.from_bytes(answer[2:4]) == 1007  # close, 1007
    [record] = [r for r in logged.records if "UTF-8" in r.getMessage()]
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "closed with 1007" in record.getMessage()


def test_a_message_that_is_not_utf8_followed_by_a_close_gets_the_close_answered_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # both in one read: the close is parsed before the text reaches the app
    bad = frame(0x1, b'{"op":"ping","x":"\xff"}')
    with caplog.at_level(logging.WARNING):
        answer = run(first_answer_to(bad + frame(0x8, (1000).to_bytes(2))))
    assert answer[:1] == b"\x88" and int.from_bytes(answer[2:4]) == 1000  # the close answered
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
