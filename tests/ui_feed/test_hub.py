"""The websocket hub, driven through an in-memory connection, each test
twice: messages sent through the connection, and written directly to the
socket (``DirectWriter``, as ``ui_feed.server.DirectSend`` does).

``settle`` sends a ping and collects everything up to the pong: since replies
queue behind what was published before, it is a barrier, not a sleep.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ioc.clock import ManualClock
from ui_feed.hub import MAX_CHANNEL_NAME, Hub
from ui_feed.screen import Frame

QUIET = 3600.0  # a heartbeat period no test reaches


class Gone(Exception):
    """What a real connection raises when the peer has left."""


class FakeConn:
    """Both ends of a websocket: the hub uses the Connection methods, the
    test plays the browser with ``send``, ``leave`` and ``outbox``. Closing
    ``gate`` makes the browser stop reading (send_text blocks)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.gate = asyncio.Event()
        self.gate.set()
        self.closed: tuple[int, str] | None = None
        self.room: int | None = None  # messages the socket takes before it is full
        self.broken: Exception | None = None  # raised by every send once set

    def took(self, msg: dict[str, Any]) -> None:
        self.outbox.put_nowait(msg)
        if self.room is not None:
            self.room -= 1
            if self.room == 0:
                self.gate.clear()

    async def receive_json(self) -> Any:
        item = await self.inbox.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def send_text(self, data: str) -> None:
        await self.gate.wait()
        if self.broken is not None:
            raise self.broken
        self.took(json.loads(data))  # must be JSON

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)

    # DirectWriter: a closed gate is a socket whose buffer is full

    def is_open(self) -> bool:
        return self.closed is None

    def ready(self) -> bool:
        return self.gate.is_set()

    def write(self, frame: Frame) -> None:
        assert self.gate.is_set(), "written while the socket is not ready"
        if self.broken is not None:
            raise self.broken
        self.took(json.loads(frame.wire("plain", bytes)))

    async def drained(self) -> None:
        await self.gate.wait()

    def send(self, msg: Any) -> None:
        self.inbox.put_nowait(msg)

    def leave(self) -> None:
        self.inbox.put_nowait(Gone())


def run(test: Callable[[], Awaitable[None]]) -> None:
    async def guarded() -> None:
        await asyncio.wait_for(test(), 10)  # a hang guard, not a timing assertion

    asyncio.run(guarded())


DIRECT = {"on": False}


@pytest.fixture(autouse=True, params=[False, True], ids=["through-conn", "direct"])
def direct_writes(request: pytest.FixtureRequest) -> None:
    DIRECT["on"] = request.param


def connect(hub: Hub) -> tuple[FakeConn, asyncio.Task[None]]:
    conn = FakeConn()
    return conn, asyncio.create_task(hub.serve(conn, conn if DIRECT["on"] else None))


async def settle(conn: FakeConn, *msgs: Any) -> list[dict[str, Any]]:
    """Send ``msgs`` then a ping; return what arrived before the pong."""
    for msg in msgs:
        conn.send(msg)
    conn.send({"op": "ping"})
    got = []
    while (msg := await conn.outbox.get())["type"] != "pong":
        if msg["type"] != "heartbeat":
            got.append(msg)
    return got


async def leave(conn: FakeConn, task: asyncio.Task[None]) -> None:
    conn.leave()
    await task


def sub(*channels: str, resume: dict[str, int] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"op": "subscribe", "channels": list(channels)}
    if resume is not None:
        msg["resume"] = resume
    return msg


def brief(msgs: list[dict[str, Any]]) -> list[tuple[str, str, int, Any]]:
    return [(m["type"], m["channel"], m["seq"], m["data"]) for m in msgs]


def test_snapshot_then_deltas_with_seq() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET)
        assert hub.publish("kpi/province", {"v": 1}, conflate=True) == 1
        assert hub.publish("alerts", "a", conflate=False) == 1
        assert hub.publish("alerts", "b", conflate=False) == 2
        conn, task = connect(hub)

        got = await settle(conn, sub("kpi/province", "alerts", "kpi/agency/x"))
        assert brief(got) == [
            ("snapshot", "kpi/province", 1, {"v": 1}),
            ("snapshot", "alerts", 2, ["a", "b"]),
        ]

        assert hub.publish("kpi/province", {"v": 2}, conflate=True) == 2
        assert hub.publish("alerts", "c", conflate=False) == 3
        hub.publish("kpi/commune/1", {"v": 9}, conflate=True)  # not subscribed
        hub.publish("kpi/agency/x", {"v": 5}, conflate=True)  # named before it existed
        assert brief(await settle(conn)) == [
            ("delta", "kpi/province", 2, {"v": 2}),
            ("delta", "alerts", 3, "c"),
            ("snapshot", "kpi/agency/x", 1, {"v": 5}),
        ]
        assert hub.snapshot("alerts") == ["a", "b", "c"]
        assert hub.snapshot("kpi/province") == {"v": 2}
        assert hub.snapshot("nope") is None
        assert hub.channels() == ["alerts", "kpi/agency/x", "kpi/commune/1", "kpi/province"]
        await leave(conn, task)

    run(main)


def test_wildcard_covers_channels_created_after_subscribing() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET)
        hub.publish("kpi/commune/00166", {"open": 3}, conflate=True)
        hub.publish("kpi/province", {"open": 9}, conflate=True)
        conn, task = connect(hub)

        got = await settle(conn, sub("kpi/commune/*"))
        assert brief(got) == [("snapshot", "kpi/commune/00166", 1, {"open": 3})]

        hub.publish("kpi/commune/00169", {"open": 1}, conflate=True)
        hub.publish("kpi/commune/00166", {"open": 4}, conflate=True)
        hub.publish("kpi/province", {"open": 10}, conflate=True)
        assert brief(await settle(conn)) == [
            ("snapshot", "kpi/commune/00169", 1, {"open": 1}),
            ("delta", "kpi/commune/00166", 2, {"open": 4}),
        ]

        # A new channel updated before its snapshot went out: still a snapshot, newest value.
        conn.gate.clear()
        hub.publish("kpi/commune/00166", {"open": 5}, conflate=True)
        await asyncio.sleep(0)  # the sender takes it and blocks
        hub.publish("kpi/commune/00172", {"open": 1}, conflate=True)
        hub.publish("kpi/commune/00172", {"open": 2}, conflate=True)
        conn.gate.set()
        assert brief(await settle(conn)) == [
            ("delta", "kpi/commune/00166", 3, {"open": 5}),
            ("snapshot", "kpi/commune/00172", 2, {"open": 2}),
        ]
        await leave(conn, task)

    run(main)


def test_unsubscribe() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET)
        hub.publish("alerts", "a", conflate=False)
        hub.publish("kpi/commune/1", 1, conflate=True)
        conn, task = connect(hub)
        assert len(await settle(conn, sub("alerts", "kpi/commune/*"))) == 2
        assert hub.stats()["subscriptions"] == 2

        await settle(conn, {"op": "unsubscribe", "channels": ["alerts"]})
        hub.publish("alerts", "b", conflate=False)
        hub.publish("kpi/commune/1", 2, conflate=True)
        assert brief(await settle(conn)) == [("delta", "kpi/commune/1", 2, 2)]

        await settle(conn, {"op": "unsubscribe", "channels": ["kpi/commune/*"]})
        hub.publish("kpi/commune/1", 3, conflate=True)
        hub.publish("kpi/commune/2", 1, conflate=True)  # new: no pattern covers it any more
        assert await settle(conn) == []
        assert hub.stats()["subscriptions"] == 0

        # Subscribing again starts over with a snapshot.
        got = await settle(conn, sub("alerts"))
        assert brief(got) == [("snapshot", "alerts", 2, ["a", "b"])]
        await leave(conn, task)

    run(main)


def test_resume_with_nothing_missed_sends_nothing() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET)
        for i in range(3):
            hub.publish("kpi/province", i, conflate=True)
            hub.publish("alerts", i, conflate=False)
        conn, task = connect(hub)
        resume = {"kpi/province": 3, "alerts": 3}
        assert await settle(conn, sub("kpi/province", "alerts", resume=resume)) == []

        hub.publish("alerts", 3, conflate=False)  # still subscribed
        assert brief(await settle(conn)) == [("delta", "alerts", 4, 3)]
        await leave(conn, task)

    run(main)


def test_resume_replays_missed_stream_items() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET)
        for i in range(1, 6):
            hub.publish("alerts", f"a{i}", conflate=False)
            hub.publish("kpi/province", i, conflate=True)
        conn, task = connect(hub)
        got = await settle(
            conn, sub("alerts", "kpi/province", resume={"alerts": 2, "kpi/province": 1})
        )
        assert brief(got) == [
            ("delta", "alerts", 3, "a3"),
            ("delta", "alerts", 4, "a4"),
            ("delta", "alerts", 5, "a5"),
            ("snapshot", "kpi/province", 5, 5),  # a conflated channel: just the latest
        ]
        await leave(conn, task)

    run(main)


def test_resume_from_a_gap_too_old_gets_a_fresh_snapshot() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET, history=5)
        for i in range(1, 21):
            hub.publish("alerts", i, conflate=False)
        conn, task = connect(hub)
        got = await settle(conn, sub("alerts", resume={"alerts": 3}))
        assert brief(got) == [("snapshot", "alerts", 20, [16, 17, 18, 19, 20])]

        # A seq from the future (the hub restarted): also a fresh snapshot.
        conn2, task2 = connect(hub)
        got = await settle(conn2, sub("alerts", resume={"alerts": 99}))
        assert brief(got) == [("snapshot", "alerts", 20, [16, 17, 18, 19, 20])]
        await leave(conn, task)
        await leave(conn2, task2)

    run(main)


def test_a_resume_from_before_a_restart_gets_a_snapshot() -> None:
    async def main() -> None:
        before = Hub(heartbeat=QUIET, seq_base=1_000)
        for i in range(200):
            before.publish("alerts", i, conflate=False)
        seen = before.snapshot("alerts")
        assert seen is not None
        # the restarted hub reloads the same 200 alerts, then three new ones
        after = Hub(heartbeat=QUIET, seq_base=5_000)
        for i in range(203):
            after.publish("alerts", i, conflate=False)
        conn, task = connect(after)
        got = await settle(conn, sub("alerts", resume={"alerts": 1_200}))
        assert [(m["type"], m["seq"]) for m in got] == [("snapshot", 5_203)]
        assert got[0]["data"][-3:] == [200, 201, 202]
        await leave(conn, task)

    run(main)


def test_a_client_not_reading_gets_the_newest_value_not_a_backlog() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET, queue_size=4, stall_timeout=QUIET)
        hub.publish("kpi/province", 0, conflate=True)
        conn, task = connect(hub)
        assert len(await settle(conn, sub("kpi/province"))) == 1

        conn.gate.clear()  # the screen stops reading
        for i in range(1, 1001):
            hub.publish("kpi/province", i, conflate=True)
            if i % 100 == 0:
                await asyncio.sleep(0)  # let the sender run and get stuck
        assert hub.stats()["pending"] <= 1
        conn.gate.set()

        got = await settle(conn)
        assert 1 <= len(got) <= 2  # at most the one already in flight, then the newest
        assert (got[-1]["type"], got[-1]["seq"], got[-1]["data"]) == ("delta", 1001, 1000)
        assert hub.stats()["dropped_slow"] == 0
        await leave(conn, task)

    run(main)


def test_a_slow_client_is_dropped_while_a_fast_one_gets_every_item() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET, queue_size=8, stall_timeout=QUIET)
        hub.publish("alerts", 0, conflate=False)
        fast, fast_task = connect(hub)
        slow, slow_task = connect(hub)
        assert len(await settle(fast, sub("alerts"))) == 1
        assert len(await settle(slow, sub("alerts"))) == 1

        slow.gate.clear()
        for i in range(1, 51):
            hub.publish("alerts", i, conflate=False)
            await asyncio.sleep(0)
        await slow_task  # serve returns once the slow client is dropped
        assert slow.closed is not None and slow.closed[0] == 1013

        got = await settle(fast)
        assert [(m["type"], m["seq"], m["data"]) for m in got] == [
            ("delta", i + 1, i) for i in range(1, 51)
        ]
        stats = hub.stats()
        assert (stats["clients"], stats["subscriptions"], stats["dropped_slow"]) == (1, 1, 1)
        assert fast.closed is None
        await leave(fast, fast_task)

    run(main)


def test_messages_keep_their_order_when_the_socket_fills_and_drains() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
        hub.publish("alerts", 0, conflate=False)
        conn, task = connect(hub)
        await settle(conn, sub("alerts"))
        conn.room = 3  # the socket takes three more, then is full
        for i in range(1, 11):
            hub.publish("alerts", i, conflate=False)
            if i == 5:
                await asyncio.sleep(0)
        assert conn.outbox.qsize() == 3
        conn.room = 4
        conn.gate.set()  # drained, for four; the sender has not run yet
        hub.publish("alerts", 11, conflate=False)  # must go behind the seven
        for _ in range(5):
            await asyncio.sleep(0)
        assert conn.outbox.qsize() == 7  # full again: nothing written meanwhile
        conn.room = None
        conn.gate.set()
        got = await settle(conn)
        assert [m["data"] for m in got] == list(range(1, 12))
        await leave(conn, task)

    run(main)


def test_a_stalled_client_is_dropped_after_stall_timeout() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET, stall_timeout=0.05)
        conn, task = connect(hub)
        await settle(conn, sub("kpi/province"))
        conn.gate.clear()
        hub.publish("kpi/province", 1, conflate=True)  # pending, never drained
        await task
        assert conn.closed == (1013, "try again later")
        assert hub.stats()["dropped_slow"] == 1
        assert hub.clients == 0

    run(main)


def test_malformed_messages_get_an_error_and_the_connection_stays() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET)
        hub.publish("alerts", "a", conflate=False)
        conn, task = connect(hub)
        bad = [
            "hello",
            [1, 2],
            {"channels": ["alerts"]},
            {"op": "dance"},
            {"op": "subscribe"},
            {"op": "subscribe", "channels": "alerts"},
            {"op": "subscribe", "channels": [""]},
            {"op": "subscribe", "channels": ["alerts"], "resume": {"alerts": "x"}},
            {"op": "subscribe", "channels": ["alerts"], "resume": [1]},
            {"op": "subscribe", "channels": ["alerts"], "resume": 5},
            {"op": "unsubscribe", "channels": [3]},
            ValueError("Expecting value: line 1 column 1"),  # an undecodable frame
            RecursionError("maximum recursion depth exceeded"),  # JSON nested too deep
        ]
        got = await settle(conn, *bad)
        assert [m["type"] for m in got] == ["error"] * len(bad)
        assert all(isinstance(m["reason"], str) and m["reason"] for m in got)
        assert conn.closed is None and not task.done()

        # None of the bad subscribes took effect; a good one still works.
        hub.publish("alerts", "b", conflate=False)
        assert await settle(conn) == []
        assert brief(await settle(conn, sub("alerts"))) == [("snapshot", "alerts", 2, ["a", "b"])]
        await leave(conn, task)

    run(main)


def test_heartbeat_arrives() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=0.01, clock=ManualClock(1_750_000_000.0))
        conn, task = connect(hub)
        msg = await conn.outbox.get()
        assert msg == {"type": "heartbeat", "at": 1_750_000_000.0}
        await leave(conn, task)

    run(main)


def test_leaving_ends_the_client_tasks_and_its_subscriptions() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET)
        hub.publish("alerts", "a", conflate=False)
        hub.publish("kpi/commune/1", 1, conflate=True)
        before = asyncio.all_tasks()
        conn, task = connect(hub)
        await settle(conn, sub("alerts", "kpi/*"))
        assert hub.clients == 1
        assert hub.stats()["subscriptions"] == 2

        await leave(conn, task)
        assert hub.clients == 0
        assert hub.stats()["subscriptions"] == 0
        assert asyncio.all_tasks() == before  # serve and its three tasks are gone
        hub.publish("kpi/commune/2", 1, conflate=True)  # no one to tell, no error
        assert conn.closed is None  # the peer left by itself: nothing to close

    run(main)


def test_a_channel_keeps_its_kind() -> None:
    hub = Hub()
    hub.publish("alerts", 1, conflate=False)
    with pytest.raises(ValueError, match="alerts"):
        hub.publish("alerts", 2, conflate=True)


def test_a_connection_holds_a_bounded_number_of_patterns() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET)
        conn, task = connect(hub)
        many = [f"kpi/commune/{i:05d}" for i in range(65)]
        got = await settle(conn, sub(*many))
        assert got == [{"type": "error", "reason": "at most 64 channel patterns per connection"}]
        assert await settle(conn, sub(*many[:64])) == []
        await leave(conn, task)

    run(main)


def test_a_fault_ending_a_client_is_a_warning_a_departure_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET, disconnects=(Gone,))
        left, left_task = connect(hub)
        await settle(left, sub("alerts"))
        await leave(left, left_task)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

        broken, broken_task = connect(hub)
        await settle(broken, sub("alerts"))
        broken.inbox.put_nowait(LookupError("a bug, not a departure"))
        await broken_task
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [str(r.exc_info[1]) for r in warned if r.exc_info] == ["a bug, not a departure"]
        assert hub.clients == 0

    with caplog.at_level(logging.DEBUG, logger="ui_feed.hub"):
        run(main)


def test_a_screen_whose_messages_cannot_be_written_is_closed_and_the_others_get_everything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET, disconnects=(Gone,))
        hub.publish("alerts", "before", conflate=False)
        hub.publish("kpi/province", {"v": -1}, conflate=True)
        broken, broken_task = connect(hub)
        good, good_task = connect(hub)
        await settle(broken, sub("alerts", "kpi/*"))
        await settle(good, sub("alerts", "kpi/*"))
        broken.broken = ValueError("cannot frame for this screen")

        for i in range(5):
            assert hub.publish("alerts", i, conflate=False) == i + 2
            hub.publish("kpi/province", {"v": i}, conflate=True)
        hub.publish("kpi/commune/1", {"v": 1}, conflate=True)  # a new channel, attached to both

        got = await settle(good)
        assert [m["data"] for m in got if m["channel"] == "alerts"] == [0, 1, 2, 3, 4]
        assert got[-1] == {**got[-1], "channel": "kpi/commune/1", "type": "snapshot"}
        await broken_task  # it ended; the hub went on
        assert hub.clients == 1
        if DIRECT["on"]:
            assert broken.closed == (1011, "internal error")
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING and r.exc_info]
        assert [str(r.exc_info[1]) for r in warned if r.exc_info] == [
            "cannot frame for this screen"
        ]
        await leave(good, good_task)

    with caplog.at_level(logging.INFO, logger="ui_feed.hub"):
        run(main)


def test_a_channel_name_past_its_length_is_refused() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET)
        longest = "sensor/" + "x" * (MAX_CHANNEL_NAME - len("sensor/"))
        hub.publish(longest, {"v": 1}, conflate=True)
        hub.publish(longest + "y", {"v": 2}, conflate=True)
        conn, task = connect(hub)
        got = await settle(conn, sub(longest + "*"), sub("sensor/x*"))
        assert got[0]["type"] == "error" and str(MAX_CHANNEL_NAME) in got[0]["reason"]
        assert [m["data"] for m in got[1:]] == [{"v": 1}, {"v": 2}]  # the shorter pattern
        assert brief(await settle(conn, sub(longest))) == []  # already there
        (reply,) = await settle(conn, {"op": "x" * 1000})
        assert reply["type"] == "error" and len(reply["reason"]) < 200
        await leave(conn, task)

    run(main)
