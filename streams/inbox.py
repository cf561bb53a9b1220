"""Messages the worker's faust agent has taken and the worker not yet merged.

The worker merges all that wait at once, with one event-id claim for them all
(``ProcedureWorker.handle_many``): a claim is a database round trip, so the
more a batch holds when the worker is busy, the fewer round trips per
message. The HTTP ingest sends one small message per partition and request
(hundreds a second), a replay a few large ones (up to the broker's message
size), so the inbox is bounded by bytes as well as by count: many small
messages may wait, few large ones."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    """A queue that hands out everything waiting at once. ``put`` waits while
    the inbox is full: ``max_messages`` items, or ``max_bytes`` or more of
    them (so it holds at most ``max_bytes`` plus one item)."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._items: deque[T] = deque()
        self._bytes = 0
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def _full(self) -> bool:
        return len(self._items) >= self.max_messages or (
            bool(self._items) and self._bytes >= self.max_bytes
        )

    async def put(self, item: T, size: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._full())
            self._items.append(item)
            self._bytes += size
            self._changed.notify_all()

    async def take_all(self) -> list[T]:
        """Everything waiting, oldest first; waits for at least one item."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items))
            items = list(self._items)
            self._items.clear()
            self._bytes = 0
            self._changed.notify_all()
            return items
