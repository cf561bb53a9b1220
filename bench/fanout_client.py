"""One client process of the fan-out benchmark: many websocket screens.

    python -m bench.fanout_client --url ws://… --readers 500 --stalled 50 \
        --channels 16 --first 0

Each screen subscribes to one channel ``kpi/commune/<n>`` (screen ``first+i``
takes channel ``(first+i) % channels``) and waits for its first update.
Readers then read everything; stalled screens stop reading for good: reading
is paused on the transport and their receive buffer is tiny, so their TCP
window closes and the server's sends to them block.

Talks to ``bench.fanout`` over stdin/stdout, one line each way:

- prints ``ready <connected> <failed>`` once every screen had its first
  update (or the connect deadline passed);
- reads ``go <t0> <t1>`` (epoch seconds): readers record, for each delta
  received in ``[t0, t1]``, its latency (receive instant minus the publish
  instant the server stamped in ``data.trace.fed``; same machine, same
  clock) in microseconds;
- after ``t1`` stalled screens read again for a moment, to learn whether the
  server closed them (1013) meanwhile, then the results, as JSON, go to
  the ``--result`` file.

Stalled screens' messages are never recorded: only readers' latency counts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import socket
import sys
import time
import zlib
from collections import Counter
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
import uvloop
from websockets.frames import Frame, Opcode

from bench.fanout_server import channel_name, raise_fd_limit

CONNECT_AT_ONCE = 50  # concurrent handshakes: the server's accept backlog is finite
CONNECT_DEADLINE = 120.0
# what a compressed message lacks (RFC 7692 7.2.2)
DEFLATE_TAIL = b"\x00\x00\xff\xff"


class Window:
    def __init__(self) -> None:
        self.t0 = self.t1 = float("inf")
        self.latencies: list[int] = []


class Screen(asyncio.Protocol):
    """One websocket screen, parsed by hand: the client processes share the
    machine with the server, and a general-purpose client library spends
    several times the CPU per message (its frames pass through generators
    and queues). The server never fragments its messages; pings are
    answered; compressed messages inflate with one decompressor per
    connection, as a browser's (valid with or without the server's context).
    """

    def __init__(self, url: str, channel: str, stalled: bool, window: Window) -> None:
        self.url = urlsplit(url)
        self.channel = channel
        self.stalled = stalled
        self.window = window
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.open = False  # handshake done
        self.inflate: Any = None
        self.first = asyncio.Event()
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self.received = 0  # deltas in the window (readers only)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        key = base64.b64encode(os.urandom(16)).decode()
        # Readers offer permessage-deflate as browsers do. Stalled screens do
        # not: compressed, their buffers would take minutes to fill;
        # uncompressed, the server meets within the warm-up the blocked socket
        # a screen that stopped reading ends up as.
        offer = "" if self.stalled else "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        self.transport.write(
            f"GET {self.url.path}?{self.url.query} HTTP/1.1\r\n"
            f"Host: {self.url.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer
        buffer += data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).decode("latin-1").lower()
            del buffer[: end + 4]
            if not head.startswith("http/1.1 101"):
                self.gone(-1)
                return
            self.open = True
            if "permessage-deflate" in head:
                self.inflate = zlib.decompressobj(-15)
            subscribe = json.dumps({"op": "subscribe", "channels": [self.channel]}).encode()
            self.send(Opcode.TEXT, subscribe)
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            b0, b1 = buffer[pos], buffer[pos + 1]
            length, head_size = b1 & 0x7F, 2
            if length == 126:
                length, head_size = int.from_bytes(buffer[pos + 2 : pos + 4]), 4
            elif length == 127:
                length, head_size = int.from_bytes(buffer[pos + 2 : pos + 10]), 10
            if size - pos < head_size + length:
                break
            payload = bytes(buffer[pos + head_size : pos + head_size + length])
            pos += head_size + length
            if b0 & 0x40:
                payload = self.inflate.decompress(payload + DEFLATE_TAIL)
            self.message(b0 & 0x0F, payload, now)
            if self.transport is None or self.close_code is not None:
                break
        del buffer[:pos]

    def message(self, opcode: int, payload: bytes, now: float) -> None:
        if opcode == Opcode.PING:
            self.send(Opcode.PONG, payload)
        elif opcode == Opcode.CLOSE:
            self.gone(int.from_bytes(payload[:2]) if len(payload) >= 2 else 1005)
        elif opcode == Opcode.TEXT:
            window = self.window
            if not self.first.is_set():
                if orjson.loads(payload).get("type") in ("snapshot", "delta"):
                    self.first.set()
                    if self.stalled:
                        assert self.transport is not None
                        self.transport.pause_reading()
            elif window.t0 <= now <= window.t1 and not self.stalled:
                msg = orjson.loads(payload)
                if msg.get("type") == "delta":
                    window.latencies.append(round((now - msg["data"]["trace"]["fed"]) * 1e6))
                    self.received += 1

    def send(self, opcode: Opcode, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(Frame(opcode, payload).serialize(mask=True))

    def gone(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
        self.first.set()
        self.closed.set()
        if self.transport is not None:
            self.transport.abort()  # no closing handshake: only the code counts

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone(1006)


async def open_screen(screen: Screen, gate: asyncio.Semaphore) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if screen.stalled:
        # a tiny window, set before connecting so the handshake advertises it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        async with gate:
            await loop.sock_connect(sock, (screen.url.hostname, screen.url.port))
            await loop.create_connection(lambda: screen, sock=sock)
            await screen.first.wait()
    except OSError:
        sock.close()
        screen.gone(-1)  # never connected


async def close_code_of_stalled(screen: Screen) -> int | None:
    """Read a stalled screen again: its close code if the server closed it."""
    if screen.transport is None:
        return -1
    screen.transport.resume_reading()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2.0):
            await screen.closed.wait()
    return screen.close_code  # None: still open


async def run(args: argparse.Namespace) -> dict[str, Any]:
    window = Window()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    screens = [
        Screen(args.url, channel_name((args.first + i) % args.channels), i >= args.readers, window)
        for i in range(args.readers + args.stalled)
    ]
    tasks = [asyncio.create_task(open_screen(s, gate)) for s in screens]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CONNECT_DEADLINE):
            await asyncio.gather(*tasks)
    connected = sum(1 for s in screens if s.open and s.close_code is None)
    print(f"ready {connected} {len(screens) - connected}", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    _, t0, t1 = line.split()
    window.t0, window.t1 = float(t0), float(t1)
    await asyncio.sleep(max(0.0, window.t1 - time.time()) + 0.2)
    stalled = [s for s in screens if s.stalled]
    stalled_codes = await asyncio.gather(*(close_code_of_stalled(s) for s in stalled))
    readers = [s for s in screens if not s.stalled]
    result = {
        "connected": connected,
        "readers": len(readers),
        "stalled": len(stalled),
        "latencies_us": window.latencies,
        "readers_receiving": sum(1 for s in readers if s.received),
        "stalled_recorded": sum(s.received for s in stalled),
        "reader_closes": dict(Counter(str(s.close_code) for s in readers if s.close_code)),
        "stalled_closes": dict(Counter(str(c) for c in stalled_codes if c is not None)),
    }
    for task in tasks:
        task.cancel()
    for s in screens:
        if s.transport is not None:
            s.transport.abort()  # no closing handshakes: the run is over
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--readers", type=int, required=True)
    parser.add_argument("--stalled", type=int, default=0)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--result", required=True, help="file for the JSON results")
    args = parser.parse_args()
    raise_fd_limit()
    result = uvloop.run(run(args))
    # to a file: uvloop leaves the stdout pipe non-blocking, and a large
    # result line would be cut at the pipe's 64 kB
    with open(args.result, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
