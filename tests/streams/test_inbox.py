"""The worker's inbox: everything waiting at once, bounded by count and bytes."""

from __future__ import annotations

import asyncio

from streams.inbox import Inbox


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_everything_waiting_is_taken_at_once_in_order() -> None:
    async def run() -> list[str]:
        inbox: Inbox[str] = Inbox(10, 1000)
        for item in "abc":
            await inbox.put(item, 1)
        return await inbox.take_all()

    assert asyncio.run(run()) == ["a", "b", "c"]


def test_put_waits_while_the_count_is_reached() -> None:
    async def run() -> tuple[int, list[int], list[int]]:
        inbox: Inbox[int] = Inbox(2, 1000)
        putting = asyncio.gather(*(inbox.put(i, 1) for i in range(3)))
        await settle()
        waiting = len(inbox)
        first = await inbox.take_all()
        await putting
        return waiting, first, await inbox.take_all()

    waiting, first, rest = asyncio.run(run())
    assert waiting == 2
    assert first == [0, 1] and rest == [2]


def test_put_waits_while_the_bytes_are_reached() -> None:
    async def run() -> list[list[str]]:
        inbox: Inbox[str] = Inbox(100, 10)
        batches: list[list[str]] = []
        putting = asyncio.ensure_future(
            asyncio.gather(inbox.put("small", 4), inbox.put("huge", 50), inbox.put("after", 4))
        )
        while len(batches) < 2:
            await settle()
            batches.append(await inbox.take_all())
        await putting
        return batches

    # "huge" goes in under the budget and passes it: "after" waits for a take
    assert asyncio.run(run()) == [["small", "huge"], ["after"]]


def test_take_all_waits_for_an_item() -> None:
    async def run() -> tuple[bool, list[str]]:
        inbox: Inbox[str] = Inbox(10, 1000)
        taking = asyncio.ensure_future(inbox.take_all())
        await settle()
        early = taking.done()
        await inbox.put("x", 1)
        return early, await taking

    assert asyncio.run(run()) == (False, ["x"])
