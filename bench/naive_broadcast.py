"""The fan-out benchmark's baseline: a naive broadcast, as the ``broadcaster``
library does it. Not product code.

``publish`` puts the message on every subscriber's own unbounded
``asyncio.Queue``; one task per client awaits ``queue.get()`` and sends it,
JSON-encoded for that client (``websocket.send_json`` style). There is no
conflation, no bound and no stall timer: a client that stops reading keeps
its queue growing for as long as it stays connected.

It speaks just enough of the hub's protocol (``subscribe`` to exact channel
names, then a delta per publish) for the benchmark's clients, and has the
hub's ``stats()`` keys so the app's ``/metrics`` can be scraped the same way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from ui_feed.screen import Connection


class _Client:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # unbounded
        self.channels: set[str] = set()


class NaiveBroadcast:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[_Client]] = {}
        self._seq: dict[str, int] = {}
        self._clients: set[_Client] = set()
        self._published = self._sent = 0
        self.on_sent: Callable[[dict[str, Any], float], None] | None = None  # unused

    def publish(self, channel: str, data: Any, *, conflate: bool) -> int:
        seq = self._seq[channel] = self._seq.get(channel, 0) + 1
        self._published += 1
        # one message object shared by every queue, as broadcaster's Event is
        msg = {"type": "delta", "channel": channel, "seq": seq, "data": data}
        for client in self._subscribers.get(channel, ()):
            client.queue.put_nowait(msg)
        return seq

    @property
    def clients(self) -> int:
        return len(self._clients)

    def stats(self) -> dict[str, int]:
        return {
            "clients": len(self._clients),
            "channels": len(self._seq),
            "subscriptions": sum(len(s) for s in self._subscribers.values()),
            "pending": sum(c.queue.qsize() for c in self._clients),
            "published": self._published,
            "messages_sent": self._sent,
            "dropped_slow": 0,  # it never drops anyone
        }

    async def serve(self, conn: Connection, writer: object = None) -> None:
        """``writer`` is ignored: every message goes through ``conn``."""
        client = _Client(conn)
        self._clients.add(client)
        tasks = [
            asyncio.create_task(self._send_loop(client)),
            asyncio.create_task(self._read_loop(client)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._clients.discard(client)
            for name in client.channels:
                self._subscribers[name].discard(client)

    async def _send_loop(self, client: _Client) -> None:
        while True:
            msg = await client.queue.get()
            await client.conn.send_text(json.dumps(msg, separators=(",", ":"), ensure_ascii=False))
            self._sent += 1

    async def _read_loop(self, client: _Client) -> None:
        while True:
            msg = await client.conn.receive_json()
            if isinstance(msg, dict) and msg.get("op") == "subscribe":
                for name in msg.get("channels") or ():
                    self._subscribers.setdefault(name, set()).add(client)
                    client.channels.add(name)
