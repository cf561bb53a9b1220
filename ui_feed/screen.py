"""One wall screen as the hub serves it: the message, encoded and framed
once for every screen (``Frame``), the connection it is served on, and its
bounded outgoing queue (``Screen``). The hub (``ui_feed.hub``) decides what
goes to which screen; this module how it is queued and written."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import orjson

Message = dict[str, Any]
CLOSE_TRY_AGAIN = 1013


class Frame(dict[str, Any]):
    """A message, encoded once however many screens it goes to: a delta is
    one object shared by every subscriber's queue, and JSON encoding is most
    of the cost of sending it (fan-out is CPU-bound in the encoding). Its
    websocket frame is built once per way of framing (``wire``)."""

    __slots__ = ("_payload", "_text", "_wire")

    def payload(self) -> bytes:
        try:
            return self._payload
        except AttributeError:
            self._payload: bytes = orjson.dumps(self)
            return self._payload

    def text(self) -> str:
        try:
            return self._text
        except AttributeError:
            self._text: str = self.payload().decode()
            return self._text

    def wire(self, key: Hashable, build: Callable[[bytes], bytes]) -> bytes:
        """The frame as sent by connections framing by ``key``; ``build``
        makes it from the payload the first time."""
        try:
            wires = self._wire
        except AttributeError:
            wires = {}
            self._wire: dict[Hashable, bytes] = wires
        frame = wires.get(key)
        if frame is None:
            frame = wires[key] = build(self.payload())
        return frame


class Connection(Protocol):
    async def receive_json(self) -> Any: ...  # raises when the peer is gone
    async def send_text(self, data: str) -> None: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class DirectWriter(Protocol):
    """Writes a message to the screen's socket now, past the ASGI send
    (``ui_feed.server.DirectSend``): no task wakes per screen and message."""

    def is_open(self) -> bool: ...
    def ready(self) -> bool: ...  # open, and the socket takes more now
    def write(self, frame: Frame) -> None: ...
    async def drained(self) -> None: ...


class Screen:
    """One screen: its subscriptions and its bounded outgoing queue.

    ``pending`` keeps send order. Conflatable messages are keyed by a tuple
    (channel or heartbeat) so a newer one replaces the pending one in place;
    ordered messages get an int key and count against ``limit``. With a
    ``writer``, a message finding nothing pending and the socket ready is
    written at once instead (and ``sent`` told), in the same order.
    """

    def __init__(
        self,
        conn: Connection,
        limit: int,
        writer: DirectWriter | None = None,
        sent: Callable[[Frame], None] = lambda frame: None,
        failed: Callable[[Screen, Exception], None] = lambda client, exc: None,
    ) -> None:
        self.conn = conn
        self.limit = limit
        self.writer = writer
        self.sent = sent
        self.failed = failed
        self.patterns: set[str] = set()
        self.channels: set[str] = set()
        self.pending: OrderedDict[tuple[str, ...] | int, Frame] = OrderedDict()
        self.ordered = 0
        self.counter = 0
        self.wake = asyncio.Event()
        self.dropped = False
        self.close_as = (CLOSE_TRY_AGAIN, "try again later")  # when dropped
        self.sender: asyncio.Task[None] | None = None

    def put(self, msg: Message, key: tuple[str, ...] | None = None) -> bool:
        """Queue ``msg``; False (nothing queued) when the ordered queue is full."""
        if not isinstance(msg, Frame):
            msg = Frame(msg)
        writer = self.writer
        if writer is not None and not self.pending and not self.dropped and writer.ready():
            try:
                writer.write(msg)
            except Exception as exc:  # this screen's fault: publish goes on to the others
                self.failed(self, exc)
                return True
            self.sent(msg)
            return True
        if key is None:
            if self.ordered >= self.limit:
                return False
            self.ordered += 1
            self.counter += 1
            self.pending[self.counter] = msg
        else:
            old = self.pending.get(key)
            if old is not None and old["type"] == "snapshot":
                msg = Frame(msg, type="snapshot")  # the client has not had its first one yet
            self.pending[key] = msg
        self.wake.set()
        return True

    def pop(self) -> Frame:
        key, msg = self.pending.popitem(last=False)
        if isinstance(key, int):
            self.ordered -= 1
        return msg

    def purge(self, names: set[str]) -> None:
        """Forget pending messages of channels the client no longer follows."""
        for key in [k for k, m in self.pending.items() if m.get("channel") in names]:
            if isinstance(key, int):
                self.ordered -= 1
            del self.pending[key]
