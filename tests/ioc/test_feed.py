"""The live-feed contract: channels and scopes, wildcard subscriptions, and
counters that add up across partitions before KPIs are derived."""

from __future__ import annotations

from typing import Any

import pytest

from ioc.feed import channel_of, kpi_view, matches, scope_of, sum_counters
from ioc.kpis import FLOWS, LEVELS, WINDOWS, derive, window_hours

T = 1_773_638_400.0  # 2026-03-16T12:20:00+07:00


def counters(flows: dict[str, dict[str, int]] | None = None, **levels: int) -> dict[str, Any]:
    """Counters of one partition: flows by window and name, levels by name."""
    out: dict[str, Any] = {
        "flows": {w: [0] * len(FLOWS) for w in WINDOWS},
        "levels": [0] * len(LEVELS),
    }
    for window, named in (flows or {}).items():
        for name, value in named.items():
            out["flows"][window][FLOWS.index(name)] = value
    for name, value in levels.items():
        out["levels"][LEVELS.index(name)] = value
    return out


# -- channels and scopes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "channel"),
    [
        ("province", "kpi/province"),
        ("commune:00166", "kpi/commune/00166"),
        ("agency:so-tu-phap-01", "kpi/agency/so-tu-phap-01"),
        ("centre:hcc-01-cn3", "kpi/centre/hcc-01-cn3"),
        ("procedure:1.000001", "kpi/procedure/1.000001"),
        ("field:ho-tich", "kpi/field/ho-tich"),
        ("group:cu-cau-giay", "kpi/group/cu-cau-giay"),
    ],
)
def test_channel_of_and_scope_of_round_trip(scope: str, channel: str) -> None:
    assert channel_of(scope) == channel
    assert scope_of(channel) == scope
    assert scope_of(channel_of(scope)) == scope


def test_only_the_first_colon_becomes_a_slash() -> None:
    assert channel_of("agency:a:b") == "kpi/agency/a:b"
    assert scope_of("kpi/agency/a:b") == "agency:a:b"


@pytest.mark.parametrize("channel", ["alerts", "sensors", "sensors/aqi", "kpis/province", ""])
def test_scope_of_other_channels_is_none(channel: str) -> None:
    assert scope_of(channel) is None


@pytest.mark.parametrize(
    ("pattern", "channel", "expected"),
    [
        ("kpi/commune/00166", "kpi/commune/00166", True),
        ("kpi/commune/00166", "kpi/commune/00160", False),
        ("kpi/commune/*", "kpi/commune/00166", True),
        ("kpi/commune/*", "kpi/commune/", True),
        ("kpi/commune/*", "kpi/agency/ubnd-00166", False),
        ("kpi/*", "kpi/province", True),
        ("kpi/*", "alerts", False),
        ("*", "alerts", True),
        ("kpi/commune/001*", "kpi/commune/00166", True),
        ("kpi/commune/001*", "kpi/commune/09877", False),
        ("kpi/commune", "kpi/commune/00166", False),  # no implicit wildcard
        ("alerts", "alerts", True),
    ],
)
def test_matches(pattern: str, channel: str, expected: bool) -> None:
    assert matches(pattern, channel) is expected


# -- sum_counters ---------------------------------------------------------------------------


def test_sum_counters_adds_partitions() -> None:
    a = counters(
        {"today": {"received": 3, "finished": 1}, "ytd": {"received": 30}}, open=2, overdue=1
    )
    b = counters({"today": {"received": 4}, "month": {"late": 2}, "ytd": {"received": 7}}, open=5)
    total = sum_counters([a, b])
    assert total["flows"]["today"][FLOWS.index("received")] == 7
    assert total["flows"]["today"][FLOWS.index("finished")] == 1
    assert total["flows"]["month"][FLOWS.index("late")] == 2
    assert total["flows"]["ytd"][FLOWS.index("received")] == 37
    assert total["flows"]["24h"] == [0] * len(FLOWS)
    assert total["levels"][LEVELS.index("open")] == 7
    assert total["levels"][LEVELS.index("overdue")] == 1


def test_sum_counters_is_elementwise_over_every_counter() -> None:
    a = counters()
    b = counters()
    for w_index, w in enumerate(WINDOWS):
        a["flows"][w] = [i + w_index for i in range(len(FLOWS))]
        b["flows"][w] = [10 * i for i in range(len(FLOWS))]
    a["levels"] = list(range(len(LEVELS)))
    b["levels"] = [1] * len(LEVELS)
    total = sum_counters([a, b])
    for w_index, w in enumerate(WINDOWS):
        assert total["flows"][w] == [11 * i + w_index for i in range(len(FLOWS))]
    assert total["levels"] == [i + 1 for i in range(len(LEVELS))]


def test_sum_counters_leaves_its_inputs_alone() -> None:
    a = counters({"today": {"received": 3}})
    sum_counters([a, a])
    assert a["flows"]["today"][FLOWS.index("received")] == 3


def test_sum_of_nothing_is_zero() -> None:
    total = sum_counters([])
    assert total == counters()


# -- kpi_view ---------------------------------------------------------------------------


def test_kpi_view_derives_every_window() -> None:
    parts = [
        counters(
            {
                "today": {"received": 6, "finished": 2, "on_time": 2},
                "24h": {"received": 8, "finished": 4, "on_time": 3, "late": 1},
                "month": {"received": 40, "finished": 30, "early": 10, "on_time": 15, "late": 5},
                "ytd": {"received": 100, "finished": 90, "early": 30, "on_time": 50, "late": 10},
            },
            open=10,
            within_deadline=8,
            overdue=2,
        ),
        counters({"today": {"received": 2}}, open=2, within_deadline=2),
    ]
    total = sum_counters(parts)
    view = kpi_view("commune:00166", "Phường Cầu Giấy", total, T)
    assert view["scope"] == "commune:00166"
    assert view["label"] == "Phường Cầu Giấy"
    assert view["at"] == T
    assert set(view["windows"]) == set(WINDOWS)
    for w in WINDOWS:
        assert view["windows"][w] == derive(total["flows"][w], total["levels"], window_hours(w, T))
    today = view["windows"]["today"]
    assert today["received"] == 8
    assert today["open"] == 12
    assert today["on_time_rate"] == pytest.approx((2 + 10) / (2 + 12))
    assert today["received_per_hour"] == pytest.approx(8 / (12 + 20 / 60))  # since 00:00
    assert view["windows"]["24h"]["late_rate"] == pytest.approx(1 / 4)
    assert view["windows"]["month"]["on_time_rate"] == pytest.approx((10 + 15 + 10) / (30 + 12))
    assert view["windows"]["ytd"]["received"] == 100
