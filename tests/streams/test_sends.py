"""What a commit sends after it waits for the broker a bounded time: a send
that is never confirmed holds neither the commit nor the ones after it, and
what it carried goes with a later commit."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

import pytest

from alerts.model import Signal
from streams.partition_worker import Sends, confirmed


def test_a_send_not_confirmed_in_time_fails_and_so_do_the_rest_of_the_commit() -> None:
    calls: list[str] = []

    async def never(name: str) -> None:
        calls.append(name)
        await asyncio.Future()

    async def at_once(name: str) -> str:
        calls.append(name)
        return name

    async def run() -> float:
        sends = Sends(0.1)
        assert await sends(at_once, "first") == "first"
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"no answer from the broker in 0\.1 s"):
            await sends(never, "lost")
        # the broker is taken for unreachable: no second wait in this commit
        with pytest.raises(TimeoutError, match="earlier send"):
            await sends(at_once, "later")
        took = time.monotonic() - started
        # the next commit tries again
        assert await Sends(0.1)(at_once, "next") == "next"
        return took

    took = asyncio.run(run())
    assert took >= 0.1
    assert calls == ["first", "lost", "next"]  # "later" failed without a wait of its own


def test_sends_together_end_with_the_first_that_fails() -> None:
    """Sent at once, waited for together: when one fails, the others are
    not left running past it (a counter sent again later could otherwise
    arrive after its newer value)."""
    done: list[str] = []

    async def send(name: str) -> None:
        if name == "refused":
            raise OSError("refused")
        await asyncio.sleep(0.05)
        done.append(name)

    async def run() -> set[asyncio.Task[Any]]:
        with pytest.raises(OSError, match="refused"):
            await Sends(5.0).together(send, [("a",), ("refused",), ("b",)])
        await asyncio.sleep(0.1)
        await Sends(5.0).together(send, [("c",), ("d",)])
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

    assert asyncio.run(run()) == set()
    assert done == ["c", "d"]


def test_a_sends_own_failure_is_not_taken_for_a_stall() -> None:
    async def refused() -> None:
        raise OSError("refused")

    async def ok() -> int:
        return 1

    async def run() -> int:
        sends = Sends(0.1)
        with pytest.raises(OSError):
            await sends(refused)
        return await sends(ok)

    assert asyncio.run(run()) == 1


class FakeSensorSink:
    async def ensure(self) -> None:
        pass


def test_sensor_signals_never_confirmed_are_kept_and_sent_once_the_broker_answers() -> None:
    """The sensor worker's commits: a signal not confirmed stays unsent and
    holds the commit only so long."""
    from ioc.clock import ManualClock
    from ioc.settings import Settings
    from ioc.stations import Stations
    from streams.sensor_stage import SensorPartition
    from streams.sensor_worker import SensorSlot, SensorWorker

    away = [True]
    sent: list[tuple[bytes, int]] = []

    async def publish_alerts(message: bytes, part: int) -> None:
        if away[0]:
            await asyncio.Future()  # a delivery confirmation that never comes
        sent.append((message, part))

    worker = SensorWorker(
        Settings(procedure_partitions=4, sensor_partitions=2),
        None,  # type: ignore[arg-type]
        ManualClock(0.0),
        FakeSensorSink(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        publish_alerts,
    )
    worker.send_timeout = 0.1
    signals = [Signal("flood_level", f"sensor:wl-{n}", 1.0, value=2.0) for n in range(4)]
    for part in (0, 1):
        # nothing new to commit: the commits only send what waits
        slot = SensorSlot(SensorPartition(part, Stations(), 0.0), 0, 0)
        slot.unsent = signals[2 * part : 2 * part + 2]
        worker.partitions[part] = slot

    async def run() -> None:
        # bounded here so that a hang fails the test rather than blocks it
        await asyncio.wait_for(worker.flush(), 2)
        assert [worker.partitions[p].unsent for p in (0, 1)] == [signals[:2], signals[2:]]
        away[0] = False
        await asyncio.wait_for(worker.flush(), 2)
        assert [worker.partitions[p].unsent for p in (0, 1)] == [[], []]

    asyncio.run(run())
    assert {s.subject for raw, _ in sent for s in _signals(raw)} == {s.subject for s in signals}


def _signals(raw: bytes) -> list[Signal]:
    from alerts.signal_messages import TYPE, signals_of
    from ioc import wire

    return signals_of(wire.message(raw, TYPE))


def test_a_delivery_given_up_on_is_not_cancelled_and_its_later_failure_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unhandled: list[dict[str, Any]] = []

    async def run() -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
        delivery: asyncio.Future[None] = loop.create_future()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(confirmed(delivery), 0.01)
        assert not delivery.cancelled()  # the producer's future lives on
        delivery.set_exception(ConnectionError("broker gone"))
        await asyncio.sleep(0)  # its callbacks run
        return delivery

    with caplog.at_level(logging.INFO, "streams.partition_worker"):
        delivery = asyncio.run(run())
    del delivery
    gc.collect()
    assert "broker gone" in caplog.text
    assert unhandled == []  # no "Future exception was never retrieved"


def test_a_delivery_waited_for_hands_its_failure_to_the_waiter() -> None:
    async def run() -> None:
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery.set_exception(ConnectionError("refused"))
        with pytest.raises(ConnectionError, match="refused"):
            await confirmed(delivery)

    asyncio.run(run())
