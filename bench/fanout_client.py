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
  server closed them (1013) meanwhile, then one JSON line with the results.

Stalled screens' messages are never recorded: only readers' latency counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.fanout_server import channel_name, raise_fd_limit

CONNECT_AT_ONCE = 50  # concurrent handshakes: the server's accept backlog is finite
CONNECT_DEADLINE = 120.0


class Screen:
    def __init__(self, channel: str, stalled: bool) -> None:
        self.channel = channel
        self.stalled = stalled
        self.ws: ClientConnection | None = None
        self.first = asyncio.Event()
        self.close_code: int | None = None
        self.received = 0  # deltas in the window (readers only)


class Window:
    def __init__(self) -> None:
        self.t0 = self.t1 = float("inf")
        self.latencies: list[int] = []


async def open_socket(url: str, stalled: bool) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if stalled:
        # a tiny window, set before connecting so the handshake advertises it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    return sock


async def run_screen(url: str, screen: Screen, window: Window, gate: asyncio.Semaphore) -> None:
    try:
        async with gate:
            sock = await open_socket(url, screen.stalled)
            # Readers offer permessage-deflate as browsers do. Stalled screens do
            # not: a compressed KPI update is ~60 bytes, so their buffers would
            # take minutes to fill; uncompressed they fill in about a second and
            # the server meets, within the warm-up, the blocked socket a screen
            # that stopped reading ends up as. No client pings: a stalled screen
            # must not notice its own stall.
            screen.ws = await connect(
                url,
                sock=sock,
                ping_interval=None,
                max_queue=16,
                compression=None if screen.stalled else "deflate",
            )
            await screen.ws.send(json.dumps({"op": "subscribe", "channels": [screen.channel]}))
        ws = screen.ws
        while orjson.loads(await ws.recv()).get("type") not in ("snapshot", "delta"):
            pass
        screen.first.set()
        if screen.stalled:
            ws.transport.pause_reading()
            return
        latencies = window.latencies
        while True:
            raw = await ws.recv()
            now = time.time()
            if window.t0 <= now <= window.t1:
                msg = orjson.loads(raw)
                if msg.get("type") == "delta":
                    latencies.append(round((now - msg["data"]["trace"]["fed"]) * 1e6))
                    screen.received += 1
    except ConnectionClosed as closed:
        screen.close_code = closed.rcvd.code if closed.rcvd is not None else 1006
    except OSError:
        screen.close_code = -1  # never connected
    finally:
        screen.first.set()


async def close_code_of_stalled(screen: Screen) -> int | None:
    """Read a stalled screen again: its close code if the server closed it."""
    ws = screen.ws
    if ws is None:
        return -1
    ws.transport.resume_reading()
    try:
        async with asyncio.timeout(2.0):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else 1006
    except TimeoutError:
        return None  # still open


async def run(args: argparse.Namespace) -> dict[str, Any]:
    window = Window()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    screens = [
        Screen(channel_name((args.first + i) % args.channels), i >= args.readers)
        for i in range(args.readers + args.stalled)
    ]
    tasks = [asyncio.create_task(run_screen(args.url, s, window, gate)) for s in screens]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CONNECT_DEADLINE):
            await asyncio.gather(*(s.first.wait() for s in screens))
    connected = sum(1 for s in screens if s.ws is not None and s.close_code is None)
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
        if s.ws is not None:
            s.ws.transport.abort()  # no closing handshakes: the run is over
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--readers", type=int, required=True)
    parser.add_argument("--stalled", type=int, default=0)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--first", type=int, default=0)
    args = parser.parse_args()
    raise_fd_limit()
    result = asyncio.run(run(args))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
