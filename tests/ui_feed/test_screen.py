"""One screen's queue and the shared message frame (ui_feed/screen.py); the
hub's tests (test_hub.py) run them through whole conversations."""

from __future__ import annotations

from typing import Any

from ui_feed.screen import Frame, Screen


class Unused:
    async def receive_json(self) -> Any: ...
    async def send_text(self, data: str) -> None: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


def test_a_frame_is_encoded_once_and_built_once_per_way_of_framing() -> None:
    frame = Frame(type="delta", channel="kpi/province", seq=3, data={"tên": "Hà Nội"})
    assert frame.payload() is frame.payload()
    assert frame.text() == frame.payload().decode() and '"Hà Nội"' in frame.text()
    built: list[bytes] = []

    def build(payload: bytes) -> bytes:
        built.append(payload)
        return b"framed:" + payload

    assert frame.wire("plain", build) == frame.wire("plain", build) == b"framed:" + frame.payload()
    frame.wire(("deflate", 12), build)
    assert built == [frame.payload(), frame.payload()]  # once per key


def test_conflated_values_replace_each_other_ordered_ones_queue_up_to_the_limit() -> None:
    screen = Screen(Unused(), limit=2)
    assert screen.put({"type": "snapshot", "channel": "kpi/a", "data": 1}, ("c", "kpi/a"))
    assert screen.put({"type": "delta", "channel": "alerts", "data": "x"})
    assert screen.put({"type": "delta", "channel": "kpi/a", "data": 2}, ("c", "kpi/a"))
    assert screen.put({"type": "delta", "channel": "alerts", "data": "y"})
    assert not screen.put({"type": "delta", "channel": "alerts", "data": "z"})  # full
    # the newer KPI value took the older one's place, still a snapshot (the
    # screen has not had its first one yet)
    assert [(m["type"], m["data"]) for m in (screen.pop(), screen.pop(), screen.pop())] == [
        ("snapshot", 2),
        ("delta", "x"),
        ("delta", "y"),
    ]
    assert not screen.pending and screen.ordered == 0


def test_purge_forgets_only_the_channels_named() -> None:
    screen = Screen(Unused(), limit=8)
    screen.put({"type": "delta", "channel": "alerts", "data": 1})
    screen.put({"type": "delta", "channel": "kpi/a", "data": 1}, ("c", "kpi/a"))
    screen.put({"type": "delta", "channel": "kpi/b", "data": 1}, ("c", "kpi/b"))
    screen.purge({"alerts", "kpi/a"})
    assert [m["channel"] for m in screen.pending.values()] == ["kpi/b"]
    assert screen.ordered == 0
