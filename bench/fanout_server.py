"""The fan-out benchmark's server: the API's app and websocket server, with a
publisher in place of the Kafka feed.

    python -m bench.fanout_server --kind hub|hub-asgi|naive --port P --channels 16 --rate 10

It serves ``ui_feed.app.create_app`` with ``ui_feed.server.server_config``
(uvicorn and its stalled-peer protocol, the read token, ``/ws``, ``/metrics``)
exactly as ``ioc api`` does, with the lifespan off: no database or Kafka is
needed, and the publisher task below stands in for ``ui_feed.feed``. With
``--kind naive`` the same app serves the naive broadcast of
``bench/naive_broadcast.py`` instead of the hub, on uvicorn's stock websocket
protocol (its compression keeps context between messages, so every screen
gets its own compressed frame). ``--kind hub-asgi`` is the hub as it was
before direct writes (``ui_feed.server.DirectSend``): every message sent
through the ASGI connection, on the stock protocol.

Channels are conflated KPI channels ``kpi/commune/<n>``, each published
``--rate`` times a second, the publishes spread evenly over the period (the
worker sends at most 10 KPI updates per scope and second). Each value is a
fresh KPI view (``ioc.feed.kpi_view`` of counters that move, about 3.4 kB of
JSON, built per update as the feed builds it) with the publish instant in
``trace.fed``, where the feed puts it: the clients measure the delivery
latency from it and the app's latency histogram sees it too.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import socket
import time
from typing import Any, cast

import uvicorn
from uvicorn._compat import asyncio_run

from ioc.feed import kpi_view
from ioc.kpis import FLOWS, LEVELS, WINDOWS
from ioc.settings import Settings
from ui_feed.app import create_app
from ui_feed.hub import Hub
from ui_feed.screen import Connection, DirectWriter
from ui_feed.server import DISCONNECTS, server_config

TOKEN = "bench-read-token-0123"
SNDBUF = 32 * 1024


def channel_name(i: int) -> str:
    return f"kpi/commune/{i:05d}"


def raise_fd_limit() -> None:
    """Every socket is a file descriptor: 2,000+ screens need more than 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def counters(rnd: random.Random) -> dict[str, Any]:
    return {
        "flows": {w: [rnd.randrange(50, 5000) for _ in FLOWS] for w in WINDOWS},
        "levels": [rnd.randrange(10, 500) for _ in LEVELS],
    }


async def publisher(hub: Hub, channels: int, rate: float) -> None:
    """``rate`` publishes a second on each channel, spread evenly."""
    rnd = random.Random(7)
    state = [counters(rnd) for _ in range(channels)]
    step = 1.0 / (rate * channels)
    due = time.monotonic()
    i = 0
    while True:
        due += step
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        # when late, publish at once (no catch-up burst beyond one per step)
        due = max(due, time.monotonic() - step)
        k = i % channels
        flows = state[k]["flows"]
        for w in WINDOWS:
            flows[w][i % len(FLOWS)] += 1
        now = time.time()
        # a fresh view per update, as the feed builds one (ui_feed.feed)
        view = kpi_view(f"commune/{k:05d}", f"Phường {k}", state[k], now)
        view["trace"] = {"fed": now}
        hub.publish(channel_name(k), view, conflate=True)
        i += 1


class AsgiHub(Hub):
    """The hub sending every message through the ASGI connection."""

    async def serve(self, conn: Connection, writer: DirectWriter | None = None) -> None:
        await super().serve(conn, None)


async def serve(kind: str, port: int, channels: int, rate: float) -> None:
    overrides: dict[str, Any] = {}
    if kind != "hub":
        overrides["ws"] = "websockets-sansio"
    if kind == "naive":
        from bench.naive_broadcast import NaiveBroadcast

        # the app only calls publish/serve/stats and sets on_sent
        hub = cast(Hub, NaiveBroadcast())
    else:
        # as create_app builds it, seqs above the start time
        hub = (Hub if kind == "hub" else AsgiHub)(
            seq_base=int(time.time() * 1000), disconnects=DISCONNECTS
        )
    settings = Settings(api_port=port, read_token=TOKEN, log_level="WARNING")
    app = create_app(settings, hub=hub)
    config = server_config(app, settings, lifespan="off", backlog=4096, **overrides)
    server = uvicorn.Server(config)
    listener = socket.create_server(("127.0.0.1", port), backlog=4096)
    # Accepted sockets inherit this fixed send buffer (the kernel doubles it):
    # autotuned, a socket to a screen that stopped reading absorbs up to
    # 4 MiB, two minutes of updates, before a send blocks; fixed, that
    # happens within the warm-up. A reader needs 34 kB/s: far less.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
    task = asyncio.create_task(publisher(hub, channels, rate))
    try:
        await server.serve(sockets=[listener])
    finally:
        task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=("hub", "hub-asgi", "naive"), default="hub")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--rate", type=float, default=10.0)
    args = parser.parse_args()
    raise_fd_limit()
    # the event loop uvicorn picks for `ioc api` (uvloop where installed)
    loop_factory = uvicorn.Config(None).get_loop_factory()
    asyncio_run(serve(args.kind, args.port, args.channels, args.rate), loop_factory=loop_factory)


if __name__ == "__main__":
    main()
