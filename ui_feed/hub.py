"""The fan-out hub behind ``GET /ws``: one publisher, many wall screens.

The protocol (subscribe with patterns and resume seqs, snapshot then
deltas, heartbeats, errors) is in docs/interfaces.md, "Websocket protocol".
Seqs are per channel, start at ``seq_base + 1`` and live in memory; the API
passes its start time in milliseconds, so a resume from before a restart
gets a snapshot. A channel's kind is fixed by its first publish: *conflated*
(only the latest value matters, seq gaps are normal) or *stream* (the last
``history`` items are kept and replayed on resume).

Trade-offs. A slow or dead screen must never slow the others and the hub must
never grow without bound. ``publish`` is synchronous (O(subscribers), no
awaits): a client served with a ``DirectWriter`` whose socket takes more and
who has nothing pending gets the message written to its socket at once (the
common case, and what keeps fan-out cheap: no task woken per screen and
message); otherwise it goes on the client's queue, which its own sender task
empties. A queue holds at most ``queue_size`` ordered messages (stream deltas and
snapshots, replies) plus at most one pending value per conflated channel and
one heartbeat: a newer KPI value replaces the pending one in place, so a
lagging screen jumps to the newest numbers instead of replaying stale ones,
and a burst of KPI updates never counts against the queue. A client whose
ordered queue overflows, or whose send has not completed within
``stall_timeout`` s, is closed with 1013 ("try again later") and counted in
``dropped_slow``; the close frame goes out behind what the socket already
holds for it (``ui_feed.server``), and uvicorn's keepalive closes a peer
that stops answering pings with the same code. The page reconnects and
resumes. Dropping a slow screen is preferred to buffering alerts for it
without limit.

``publish`` and ``serve`` must run on the same event loop. Published data is
shared by reference with every queue: do not mutate it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Any

from ioc.clock import Clock
from ioc.feed import matches
from ui_feed.screen import Connection, DirectWriter, Frame, Message, Screen

log = logging.getLogger(__name__)

_HEARTBEAT = ("heartbeat",)  # queue key: one pending heartbeat at most
CLOSE_INTERNAL_ERROR = 1011  # a fault of ours in serving one screen
# Ordered messages a client may have pending. One SLA message from the worker
# carries up to alerts.messages.ITEMS_PER_MESSAGE (1000) alerts, published in
# one go: a screen that keeps up must be able to take two such bursts.
QUEUE_SIZE = 2048
# Channel patterns one connection may hold (a wall screen uses a handful).
MAX_PATTERNS = 64
# Longest channel name or pattern taken (channels are at most about 140).
MAX_CHANNEL_NAME = 256


def _message(kind: str, channel: str, seq: int, data: Any) -> Frame:
    return Frame(type=kind, channel=channel, seq=seq, data=data)


class _Channel:
    __slots__ = ("conflate", "items", "name", "seq", "subscribers", "value")

    def __init__(self, name: str, conflate: bool, history: int, seq_base: int) -> None:
        self.name = name
        self.conflate = conflate
        self.seq = seq_base
        self.value: Any = None
        self.items: deque[tuple[int, Any]] = deque(maxlen=history)
        self.subscribers: set[Screen] = set()


class Hub:
    """Channels, their latest data, and the clients following them."""

    def __init__(
        self,
        *,
        queue_size: int = QUEUE_SIZE,
        heartbeat: float = 15.0,
        stall_timeout: float = 30.0,
        history: int = 200,
        clock: Clock | None = None,
        seq_base: int = 0,
        disconnects: tuple[type[BaseException], ...] = (OSError,),
    ) -> None:
        if queue_size < 1 or history < 1 or heartbeat <= 0 or stall_timeout <= 0:
            raise ValueError("queue_size, history, heartbeat and stall_timeout must be positive")
        self._queue_size, self._history = queue_size, history
        self._seq_base = seq_base
        self._heartbeat, self._stall_timeout = heartbeat, stall_timeout
        self._now = clock.now if clock is not None else time.time
        # what the connection raises when the peer has left (the server's
        # adapter names its own): anything else is a fault worth a warning
        self._disconnects = disconnects
        self._channels: dict[str, _Channel] = {}
        self._clients: set[Screen] = set()
        self._published = self._sent = self._dropped_slow = 0
        # told of every message a screen has taken, with the wall time
        # (latency histograms); it must be quick
        self.on_sent: Callable[[Message, float], None] | None = None

    # -- publishing ---------------------------------------------------------

    def publish(self, channel: str, data: Any, *, conflate: bool) -> int:
        """Record ``data`` on ``channel`` and queue it for its subscribers.

        Synchronous and never blocks; returns the channel's new seq."""
        ch = self._channels.get(channel)
        created = ch is None
        if ch is None:
            ch = self._channels[channel] = _Channel(
                channel, conflate, self._history, self._seq_base
            )
        elif ch.conflate != conflate:
            raise ValueError(f"channel {channel!r} is {'' if ch.conflate else 'not '}conflated")
        ch.seq += 1
        self._published += 1
        if conflate:
            ch.value = data
        else:
            ch.items.append((ch.seq, data))
        if created:
            # Rare: only here do we scan every client, for patterns covering the new channel.
            for client in list(self._clients):
                if any(matches(p, channel) for p in client.patterns):
                    self._attach(client, ch, None)
            return ch.seq
        msg = _message("delta", channel, ch.seq, data)
        for client in list(ch.subscribers):  # _drop may shrink the set
            self._offer(client, ch, msg)
        return ch.seq

    def snapshot(self, channel: str) -> Any | None:
        """The latest value of a conflated channel, the retained items of a
        stream channel, or None for an unknown channel."""
        ch = self._channels.get(channel)
        if ch is None:
            return None
        return ch.value if ch.conflate else [item for _, item in ch.items]

    def channels(self) -> list[str]:
        return sorted(self._channels)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def stats(self) -> dict[str, int]:
        return {
            "clients": len(self._clients),
            "channels": len(self._channels),
            "subscriptions": sum(len(ch.subscribers) for ch in self._channels.values()),
            "pending": sum(len(c.pending) for c in self._clients),
            "published": self._published,
            "messages_sent": self._sent,
            "dropped_slow": self._dropped_slow,
        }

    # -- one client ---------------------------------------------------------

    async def serve(self, conn: Connection, writer: DirectWriter | None = None) -> None:
        """Run one client until it leaves (receive/send raises) or is dropped;
        ``writer`` to write its messages past ``conn``."""
        client = Screen(conn, self._queue_size, writer, self._was_sent, self._failed)
        self._clients.add(client)
        tasks = [
            asyncio.create_task(self._send_loop(client)),
            asyncio.create_task(self._read_loop(client)),
            asyncio.create_task(self._heartbeat_loop(client)),
        ]
        client.sender = tasks[0]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, self._disconnects):
                    log.debug("client left: %r", result)
                elif isinstance(result, Exception):
                    log.warning("websocket client ended by an error", exc_info=result)
            self._clients.discard(client)
            self._detach_all(client)
        if client.dropped:
            # Bounded too: a dead peer must not hold this task forever.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._stall_timeout):
                    await conn.close(*client.close_as)

    async def _send_loop(self, client: Screen) -> None:
        writer = client.writer
        while not client.dropped:
            if not client.pending:
                client.wake.clear()
                await client.wake.wait()
                continue
            try:
                async with asyncio.timeout(self._stall_timeout):
                    if writer is None:
                        msg = client.pop()
                        await client.conn.send_text(msg.text())
                    elif not writer.is_open():
                        return  # the peer is gone: serve ends
                    else:
                        await writer.drained()
                        # nothing else writes while messages are pending
                        while client.pending and writer.ready():
                            msg = client.pop()
                            try:
                                writer.write(msg)
                            except Exception as exc:
                                self._failed(client, exc)
                                return
                            self._was_sent(msg)
                        continue
            except TimeoutError:
                self._drop(client, "stalled")
                return
            self._was_sent(msg)

    def _was_sent(self, msg: Frame) -> None:
        self._sent += 1
        if self.on_sent is not None:
            self.on_sent(msg, time.time())

    async def _read_loop(self, client: Screen) -> None:
        while not client.dropped:
            try:
                msg = await client.conn.receive_json()
            except (ValueError, TypeError, KeyError, RecursionError):
                # Undecodable frame (bad JSON, binary, nested past the parser's
                # depth): the connection itself is fine.
                self._reply(client, {"type": "error", "reason": "message is not JSON text"})
                continue
            self._handle(client, msg)

    async def _heartbeat_loop(self, client: Screen) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            client.put({"type": "heartbeat", "at": self._now()}, _HEARTBEAT)

    def _handle(self, client: Screen, msg: Any) -> None:
        m = msg if isinstance(msg, dict) else {}
        op, patterns, resume = m.get("op"), m.get("channels"), m.get("resume") or {}
        error = None
        if op == "ping":
            self._reply(client, {"type": "pong"})
        elif op not in ("subscribe", "unsubscribe"):
            error = f"unknown op {str(op)[:40]!r}: expected subscribe, unsubscribe or ping"
        elif not (
            isinstance(patterns, list)
            and patterns
            and all(isinstance(p, str) and 0 < len(p) <= MAX_CHANNEL_NAME for p in patterns)
        ):
            error = (
                "'channels' must be a non-empty list of channel names or prefix* patterns"
                f" of at most {MAX_CHANNEL_NAME} characters"
            )
        elif op == "unsubscribe":
            self._unsubscribe(client, patterns)
        elif len(client.patterns.union(patterns)) > MAX_PATTERNS:
            # every new channel is matched against every client's patterns
            error = f"at most {MAX_PATTERNS} channel patterns per connection"
        elif not (
            isinstance(resume, dict) and all(type(s) is int and s >= 0 for s in resume.values())
        ):  # type() so that true/false are refused
            error = "'resume' must map channel names to the last seq seen"
        else:
            self._subscribe(client, patterns, resume)
        if error:
            self._reply(client, {"type": "error", "reason": error})

    def _reply(self, client: Screen, msg: Message) -> None:
        # Replies are ordered messages: a client that does not read them is slow too.
        if not client.put(msg):
            self._drop(client, "queue full")

    # -- subscriptions ------------------------------------------------------

    def _subscribe(self, client: Screen, patterns: list[str], resume: dict[str, int]) -> None:
        for pattern in patterns:
            client.patterns.add(pattern)
            if pattern.endswith("*"):
                names = [n for n in self._channels if matches(pattern, n)]
            else:
                names = [pattern] if pattern in self._channels else []
            for name in names:
                if name not in client.channels:
                    self._attach(client, self._channels[name], resume.get(name))
                if client.dropped:
                    return

    def _unsubscribe(self, client: Screen, patterns: list[str]) -> None:
        client.patterns.difference_update(patterns)
        gone = {n for n in client.channels if not any(matches(p, n) for p in client.patterns)}
        for name in gone:
            self._channels[name].subscribers.discard(client)
        client.channels -= gone
        client.purge(gone)

    def _attach(self, client: Screen, ch: _Channel, since: int | None) -> None:
        """Subscribe ``client`` to ``ch`` and queue what it needs to catch up."""
        ch.subscribers.add(client)
        client.channels.add(ch.name)
        if since == ch.seq:
            return
        if not ch.conflate and since is not None and since < ch.seq:
            missed = ch.seq - since
            # Replay only when history still covers since+1 and the queue can take it all.
            if ch.items and ch.items[0][0] <= since + 1 and missed <= client.limit - client.ordered:
                for seq, item in islice(ch.items, len(ch.items) - missed, None):
                    client.put(_message("delta", ch.name, seq, item))
                return
        data = ch.value if ch.conflate else [item for _, item in ch.items]
        self._offer(client, ch, _message("snapshot", ch.name, ch.seq, data))

    def _offer(self, client: Screen, ch: _Channel, msg: Message) -> None:
        if ch.conflate:
            client.put(msg, ("c", ch.name))
        elif not client.put(msg):
            self._drop(client, "queue full")

    def _detach_all(self, client: Screen) -> None:
        for name in client.channels:
            self._channels[name].subscribers.discard(client)
        client.channels.clear()
        client.patterns.clear()

    def _drop(self, client: Screen, why: str) -> None:
        """Disconnect a slow client: stop its sender; ``serve`` closes with 1013."""
        if client.dropped:
            return
        log.info("dropping slow websocket client (%s, %d pending)", why, len(client.pending))
        self._dropped_slow += 1
        self._stop(client)

    def _failed(self, client: Screen, exc: Exception) -> None:
        """A message could not be written to ``client``: close it, not the hub."""
        if client.dropped:
            return
        log.warning("closing a websocket client whose message could not be written", exc_info=exc)
        client.close_as = (CLOSE_INTERNAL_ERROR, "internal error")
        self._stop(client)

    def _stop(self, client: Screen) -> None:
        client.dropped = True
        self._detach_all(client)
        client.pending.clear()
        client.ordered = 0
        if client.sender is not None:
            client.sender.cancel()  # it may be stuck in send_text
        client.wake.set()
