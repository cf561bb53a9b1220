"""What the procedure and sensor workers share: the discipline of a
partition's state between Kafka and the database.

- A partition's state is loaded from the database when faust assigns it;
  a message of a partition being loaded waits for the load.
- Messages are merged into their partition's state, a commit writes what
  the states drained in one transaction (with what a new owner needs to go
  on exactly where it ended), and only then are the messages acknowledged:
  a restart loses nothing acknowledged and merges nothing twice.
- A commit runs as soon as messages are merged (those merged meanwhile go
  into the next: group commit) and every ``IOC_FLUSH_INTERVAL`` s for the
  time that passes.
- A revoked partition gets a last commit before it goes.
- What a commit sends to the broker afterwards (``Sends``) waits for it
  ``SEND_TIMEOUT`` s at most: a send lost on a dead connection must not
  hold the commit lock, and with it every later commit, until the
  producer gives up on it. What times out is sent with a later commit.

Subclasses load (``_load``) and commit (``flush``) their own state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from faust.types import EventT, StreamT

from ioc.settings import Settings

log = logging.getLogger(__name__)

Ack = tuple[StreamT[Any], EventT[Any]]
Slot = TypeVar("Slot")
T = TypeVar("T")

# The longest a commit waits for the broker to take one message it sends
# after the database commit (SLA transitions, units' counters and signals
# until the broker confirms them, KPI updates and statuses until queued).
# A healthy broker answers in milliseconds, in a second or two under load;
# one that does not answer in this time is taken for unreachable.
SEND_TIMEOUT = 10.0


class Sends:
    """The sends of one commit, each awaited ``timeout`` s at most. Once
    one has timed out the rest fail at once, so a commit waits for an
    unreachable broker ``timeout`` s in all, not once per message. A send
    that timed out may still reach the broker later: what is sent again
    after it arrives twice, which its readers tolerate."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.stalled = False

    async def __call__(self, send: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self.stalled:
            raise TimeoutError("the broker did not answer an earlier send of this commit")
        try:
            return await asyncio.wait_for(send(*args), self.timeout)
        except TimeoutError:
            self.stalled = True
            raise TimeoutError(f"no answer from the broker in {self.timeout:g} s") from None

    async def together(
        self, send: Callable[..., Awaitable[object]], calls: Sequence[tuple[Any, ...]]
    ) -> None:
        """``send(*args)`` for every ``args`` of ``calls`` at once, waited for
        together (``timeout`` s in all): one round trip to the broker, not one
        per message. Only for messages whose order among themselves does not
        matter."""
        if calls:
            await self(_all, send, calls)


async def confirmed(awaitable: Awaitable[T]) -> T:
    """Wait for the broker's confirmation of one message without letting a
    timeout cancel it (a producer's own future, cancelled, would be lost to
    it). When the wait is given up, what the delivery ends with later is
    only logged: the message goes again with a later commit."""
    delivery = asyncio.ensure_future(awaitable)  # the same future when it is one
    try:
        return await asyncio.shield(delivery)
    except asyncio.CancelledError:
        delivery.add_done_callback(_outcome_after_wait)
        raise


def _outcome_after_wait(delivery: asyncio.Future[Any]) -> None:
    # retrieves the exception, else asyncio logs "never retrieved" with a
    # traceback for a failure nobody waits for any more
    if not delivery.cancelled() and (exc := delivery.exception()) is not None:
        log.info("a send failed after its commit stopped waiting for it: %r", exc)


async def _all(send: Callable[..., Awaitable[object]], calls: Sequence[tuple[Any, ...]]) -> None:
    sends = [asyncio.ensure_future(send(*args)) for args in calls]
    try:
        await asyncio.gather(*sends)
    except BaseException:  # one failed: the others end with it, as on a timeout
        for task in sends:
            task.cancel()
        raise


class PartitionWorker(Generic[Slot]):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.partitions: dict[int, Slot] = {}
        # partitions being loaded: faust may hand us their messages already
        self._loading: dict[int, asyncio.Event] = {}
        self._lock = asyncio.Lock()  # one commit at a time
        self.send_timeout = SEND_TIMEOUT
        # set when messages are merged: the commit loop commits them at once
        self._applied = asyncio.Event()

    # -- partitions come and go ----------------------------------------------------

    def expect(self, parts: set[int]) -> None:
        """Partitions about to be assigned: their messages wait for their
        load. Faust may hand them over while another stream's partitions
        load; one taken for a partition not known here is left unread."""
        for part in parts - set(self.partitions):
            self._loading.setdefault(part, asyncio.Event())

    async def assign(self, parts: set[int]) -> None:
        self.expect(parts)
        new = sorted(parts - set(self.partitions))
        try:
            await self._load(new)
        finally:
            for part in new:
                self._loading.pop(part).set()

    async def _load(self, parts: list[int]) -> None:
        """Put each partition's state in ``self.partitions``."""
        raise NotImplementedError

    async def revoke(self, parts: set[int]) -> None:
        await self.flush(parts & set(self.partitions))
        for part in parts:
            self.partitions.pop(part, None)

    async def slot_of(self, part: int) -> Slot | None:
        """The partition's state, once loaded; None when it is not ours (its
        message stays unacknowledged: the new owner reads it)."""
        slot = self.partitions.get(part)
        if slot is None and part in self._loading:
            await self._loading[part].wait()
            slot = self.partitions.get(part)
        return slot

    # -- commits -------------------------------------------------------------------

    async def run_commits(self) -> None:
        """Commit as soon as messages are merged, else every ``_commit_wait()`` s."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._applied.wait(), self._commit_wait())
                if self.settings.commit_delay:
                    await asyncio.sleep(self.settings.commit_delay)
            self._applied.clear()
            await self.flush()

    def _commit_wait(self) -> float:
        return self.settings.flush_interval

    def _sends(self) -> Sends:
        """What bounds the sends of the commit under way."""
        return Sends(self.send_timeout)

    async def flush(self, parts: set[int] | None = None) -> None:
        """Commit what the states of ``parts`` (all when None) hold, then
        acknowledge and publish."""
        raise NotImplementedError

    @staticmethod
    async def ack(acks: Sequence[Ack]) -> None:
        for stream, event in acks:
            await stream.ack(event)
