"""KPI definitions: the flows dossiers contribute, the derived rates, the
processing-time percentile, and the windows in UTC+7."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest

from ioc.clock import VN_TZ
from ioc.kpis import (
    FLOWS,
    HIST0,
    KLASS_EARLY,
    KLASS_LATE,
    KLASS_ON_TIME,
    LEVELS,
    N_HIST,
    PROCESSING_EDGES_H,
    WINDOWS,
    FlowColumns,
    day_of,
    derive,
    flow_entries,
    hour_of,
    p90_hours,
    window_hours,
    window_start,
)

HOUR = 3600.0


def vn(text: str) -> float:
    """Epoch seconds of a local (UTC+7) time written ``YYYY-MM-DD HH:MM[:SS]``."""
    fmt = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return datetime.strptime(text, fmt).replace(tzinfo=VN_TZ).timestamp()


R = vn("2026-03-16 09:00")  # a receipt
F = vn("2026-03-16 14:00")  # a finish


COLUMN_TYPES = {
    "received": np.float64,
    "online": np.bool_,
    "dossier_digitized": np.bool_,
    "rejected": np.float64,
    "withdrawn": np.float64,
    "apology": np.float64,
    "finished": np.float64,
    "klass": np.int64,
    "with_result": np.bool_,
    "result_digitized": np.bool_,
    "fee_required": np.bool_,
    "paid_online": np.bool_,
    "score": np.int64,
    "complaint": np.bool_,
    "processing_seconds": np.float64,
}


def columns(*dossiers: dict[str, Any]) -> FlowColumns:
    """FlowColumns with one entry per dossier; absent fields are 0 / False."""
    return FlowColumns(
        **{
            name: np.array([d.get(name, 0) for d in dossiers], dtype=dtype)
            for name, dtype in COLUMN_TYPES.items()
        }
    )


def entries(c: FlowColumns) -> dict[str, list[tuple[int, float, int]]]:
    """The flow entries by flow name: (dossier, instant, amount)."""
    rows, cols, at, amount = flow_entries(c)
    out: dict[str, list[tuple[int, float, int]]] = {}
    for r, f, t, a in zip(rows, cols, at, amount, strict=True):
        out.setdefault(FLOWS[f], []).append((int(r), float(t), int(a)))
    return out


def finished(**extra: Any) -> dict[str, Any]:
    return {"received": R, "finished": F, "klass": KLASS_ON_TIME, **extra}


def hist_bin(hours: float) -> str:
    """The histogram flow that one finished dossier lands in."""
    found = [
        name
        for name in entries(columns(finished(processing_seconds=hours * HOUR)))
        if name.startswith("processing_") and name != "processing_minutes"
    ]
    assert len(found) == 1
    return found[0]


# -- flow_entries ----------------------------------------------------------------------


def test_receipt_cohort_is_counted_at_the_receipt() -> None:
    got = entries(columns({"received": R, "online": True, "dossier_digitized": True}))
    assert got == {
        "received": [(0, R, 1)],
        "received_online": [(0, R, 1)],
        "dossier_digitized": [(0, R, 1)],
    }


def test_offline_undigitised_receipt_counts_only_as_received() -> None:
    assert entries(columns({"received": R})) == {"received": [(0, R, 1)]}


def test_rejected_withdrawn_and_apology_are_counted_at_their_own_instant() -> None:
    got = entries(
        columns(
            {"received": R, "rejected": R + 60},
            {"received": R, "withdrawn": R + 120},
            {"received": R, "apology": R + 180},
        )
    )
    assert got["rejected_at_intake"] == [(0, R + 60, 1)]
    assert got["withdrawn"] == [(1, R + 120, 1)]
    assert got["apology_issued"] == [(2, R + 180, 1)]
    assert "finished" not in got


def test_finish_cohort_is_counted_at_the_finish() -> None:
    got = entries(
        columns(
            finished(
                online=True,
                with_result=True,
                result_digitized=True,
                fee_required=True,
                paid_online=True,
                score=4,
                processing_seconds=3 * HOUR,
            )
        )
    )
    for name in (
        "finished",
        "on_time",
        "with_result",
        "result_digitized",
        "fee_bearing",
        "paid_online",
        "rated",
        "scored",
        "processing_le_4h",
    ):
        assert got[name] == [(0, F, 1)], name
    assert got["rating_sum"] == [(0, F, 4)]
    assert got["processing_minutes"] == [(0, F, 180)]
    assert got["received"] == [(0, R, 1)]
    assert got["received_online"] == [(0, R, 1)]
    for name in ("early", "late", "late_no_apology", "dissatisfied"):
        assert name not in got


@pytest.mark.parametrize(
    ("klass", "flow"), [(KLASS_EARLY, "early"), (KLASS_ON_TIME, "on_time"), (KLASS_LATE, "late")]
)
def test_each_finish_class_counts_once(klass: int, flow: str) -> None:
    got = entries(columns(finished(klass=klass)))
    classes = {"early", "on_time", "late"} & set(got)
    assert classes == {flow}
    assert got[flow] == [(0, F, 1)]


def test_late_without_apology() -> None:
    got = entries(columns(finished(klass=KLASS_LATE), finished(klass=KLASS_LATE, apology=F - HOUR)))
    assert got["late"] == [(0, F, 1), (1, F, 1)]
    assert got["late_no_apology"] == [(0, F, 1)]
    assert got["apology_issued"] == [(1, F - HOUR, 1)]


def test_result_digitised_only_with_a_result_and_paid_online_only_with_a_fee() -> None:
    got = entries(columns(finished(result_digitized=True, paid_online=True)))
    for name in ("with_result", "result_digitized", "fee_bearing", "paid_online"):
        assert name not in got


def test_ratings_only_for_finished_dossiers() -> None:
    got = entries(columns({"received": R, "score": 5, "complaint": True}))
    for name in ("rated", "scored", "rating_sum", "dissatisfied"):
        assert name not in got


@pytest.mark.parametrize(
    ("score", "complaint", "rated", "scored", "dissatisfied"),
    [
        (5, False, True, True, False),
        (3, False, True, True, False),
        (2, False, True, True, True),
        (1, False, True, True, True),
        (0, True, True, False, True),
        (5, True, True, True, True),
        (0, False, False, False, False),
    ],
)
def test_dissatisfied_is_a_complaint_or_a_score_of_two_or_less(
    score: int, complaint: bool, rated: bool, scored: bool, dissatisfied: bool
) -> None:
    got = entries(columns(finished(score=score, complaint=complaint)))
    assert ("rated" in got) is rated
    assert ("scored" in got) is scored
    assert ("dissatisfied" in got) is dissatisfied
    if scored:
        assert got["rating_sum"] == [(0, F, score)]


@pytest.mark.parametrize(
    ("hours", "flow"),
    [
        (0, "processing_le_0.5h"),
        (0.5, "processing_le_0.5h"),
        (0.5 + 1 / HOUR, "processing_le_1h"),
        (8, "processing_le_8h"),
        (8 + 1 / HOUR, "processing_le_12h"),
        (24, "processing_le_24h"),
        (960, "processing_le_960h"),
        (960 + 1 / HOUR, "processing_over"),
        (5000, "processing_over"),
    ],
)
def test_processing_histogram_edges_are_inclusive(hours: float, flow: str) -> None:
    assert hist_bin(hours) == flow


def test_processing_minutes_are_rounded_and_zero_is_not_counted() -> None:
    got = entries(
        columns(
            finished(processing_seconds=89.0),
            finished(processing_seconds=29.0),
            finished(processing_seconds=3 * HOUR + 31),
        )
    )
    assert got["processing_minutes"] == [(0, F, 1), (2, F, 181)]
    assert [row for row, _, _ in got["processing_le_0.5h"]] == [0, 1]


def test_nothing_counted_for_a_dossier_without_a_receipt() -> None:
    orphan = {
        "online": True,
        "dossier_digitized": True,
        "rejected": R,
        "withdrawn": R,
        "apology": R,
        "finished": F,
        "klass": KLASS_LATE,
        "with_result": True,
        "fee_required": True,
        "paid_online": True,
        "score": 1,
        "complaint": True,
        "processing_seconds": HOUR,
    }
    assert entries(columns(orphan)) == {}
    got = entries(columns(orphan, {"received": R}))
    assert got == {"received": [(1, R, 1)]}


def test_entries_are_typed_arrays_of_equal_length() -> None:
    rows, cols, at, amount = flow_entries(columns(finished(), {"received": R}))
    assert len(rows) == len(cols) == len(at) == len(amount)
    assert cols.dtype == np.int64 and amount.dtype == np.int64
    assert at.dtype == np.float64
    empty = flow_entries(columns())
    assert all(len(a) == 0 for a in empty)


# -- derive -----------------------------------------------------------------------


def flows(**counts: int) -> list[int]:
    vec = [0] * len(FLOWS)
    for name, value in counts.items():
        vec[FLOWS.index(name)] = value
    return vec


def levels(**counts: int) -> list[int]:
    vec = [0] * len(LEVELS)
    for name, value in counts.items():
        vec[LEVELS.index(name)] = value
    return vec


def test_on_time_rate_counts_finished_on_time_and_open_within_deadline() -> None:
    kpi = derive(
        flows(finished=10, early=3, on_time=4, late=3),
        levels(open=10, within_deadline=6, overdue=4),
        hours=24,
    )
    assert kpi["to_settle"] == 20
    assert kpi["on_time_rate"] == pytest.approx((3 + 4 + 6) / 20)
    assert kpi["late_rate"] == pytest.approx(3 / 10)


def test_rates_are_null_when_their_denominator_is_zero() -> None:
    kpi = derive(flows(), levels(), hours=1)
    for name in (
        "on_time_rate",
        "late_rate",
        "online_submission_rate",
        "online_payment_rate",
        "dossier_digitisation_rate",
        "result_digitisation_rate",
        "avg_processing_hours",
        "p90_processing_hours",
        "satisfaction_mean",
        "complaint_share",
    ):
        assert kpi[name] is None, name
    assert kpi["received_per_hour"] == 0  # the window has a length: zero per hour
    assert kpi["finished_per_hour"] == 0
    assert kpi["missing_apology"] == 0


def test_on_time_rate_with_only_open_dossiers() -> None:
    kpi = derive(flows(), levels(open=4, within_deadline=3), hours=1)
    assert kpi["on_time_rate"] == pytest.approx(0.75)
    assert kpi["late_rate"] is None


def test_missing_apology_adds_late_and_overdue_without_a_letter() -> None:
    kpi = derive(
        flows(finished=5, late=3, late_no_apology=2),
        levels(open=4, overdue=3, overdue_no_apology=1),
        1,
    )
    assert kpi["missing_apology"] == 3


def test_throughput_is_per_hour_of_the_window() -> None:
    kpi = derive(flows(received=30, finished=12), levels(), hours=6)
    assert kpi["received_per_hour"] == pytest.approx(5)
    assert kpi["finished_per_hour"] == pytest.approx(2)


def test_online_payment_digitisation_and_satisfaction_rates() -> None:
    kpi = derive(
        flows(
            received=10,
            received_online=4,
            dossier_digitized=5,
            finished=8,
            with_result=6,
            result_digitized=3,
            fee_bearing=4,
            paid_online=1,
            rated=5,
            scored=4,
            rating_sum=14,
            dissatisfied=2,
            processing_minutes=8 * 90,
        ),
        levels(),
        hours=10,
    )
    assert kpi["online_submission_rate"] == pytest.approx(0.4)
    assert kpi["dossier_digitisation_rate"] == pytest.approx(0.5)
    assert kpi["result_digitisation_rate"] == pytest.approx(0.5)
    assert kpi["online_payment_rate"] == pytest.approx(0.25)
    assert kpi["satisfaction_mean"] == pytest.approx(3.5)
    assert kpi["complaint_share"] == pytest.approx(0.4)
    assert kpi["avg_processing_hours"] == pytest.approx(1.5)


def test_derive_passes_counts_and_levels_through() -> None:
    kpi = derive(
        flows(
            received=9,
            finished=7,
            early=1,
            on_time=2,
            late=4,
            rejected_at_intake=2,
            withdrawn=1,
            apology_issued=3,
        ),
        levels(
            open=6,
            on_track=1,
            at_risk=1,
            overdue=3,
            paused=1,
            **{"overdue_age_0-1": 1, "overdue_age_3-10": 2},
        ),
        hours=1,
    )
    expected = {
        "received": 9,
        "finished": 7,
        "open": 6,
        "on_track": 1,
        "at_risk": 1,
        "overdue": 3,
        "paused": 1,
        "early": 1,
        "on_time": 2,
        "late": 4,
        "rejected_at_intake": 2,
        "withdrawn": 1,
        "apology_issued": 3,
    }
    assert {k: kpi[k] for k in expected} == expected
    assert kpi["overdue_age"] == {"0-1": 1, "1-3": 0, "3-10": 2, "10-30": 0, "30+": 0}


def test_derive_reads_the_histogram_for_p90() -> None:
    hist = {f"processing_le_{e:g}h": 0 for e in PROCESSING_EDGES_H}
    hist["processing_le_2h"] = 9
    hist["processing_le_16h"] = 1
    kpi = derive(flows(finished=10, **hist), levels(), hours=1)
    assert kpi["p90_processing_hours"] == 2


# -- p90_hours ----------------------------------------------------------------------


def histogram(**bins: int) -> list[int]:
    """A histogram by upper edge, e.g. ``histogram(h2=3, over=1)``."""
    hist = [0] * N_HIST
    for key, count in bins.items():
        index = (
            N_HIST - 1
            if key == "over"
            else PROCESSING_EDGES_H.index(float(key[1:].replace("_", ".")))
        )
        hist[index] = count
    return hist


def test_histogram_layout() -> None:
    assert len(PROCESSING_EDGES_H) + 1 == N_HIST
    assert FLOWS[HIST0] == "processing_le_0.5h"
    assert FLOWS[HIST0 + N_HIST - 1] == "processing_over"


@pytest.mark.parametrize(
    ("bins", "p90"),
    [
        ({}, None),
        ({"h1": 1}, 1),
        ({"h0_5": 9, "h8": 1}, 0.5),  # rank ceil(9.0) = 9: the 9th value is in the first bin
        ({"h0_5": 8, "h8": 2}, 8),
        ({"h4": 90, "h40": 10}, 4),
        ({"h4": 89, "h40": 11}, 40),
        ({"h4": 9, "h960": 1}, 4),
        ({"h4": 9, "over": 1}, 4),
        ({"h4": 8, "over": 2}, None),  # the 90th percentile is in the overflow bin
        ({"over": 3}, None),
        ({"h2": 1, "h12": 1}, 12),  # n = 2: rank 2
    ],
)
def test_p90_is_the_nearest_rank_upper_edge(bins: dict[str, int], p90: float | None) -> None:
    assert p90_hours(histogram(**bins)) == p90


# -- windows and buckets ------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "now", "start"),
    [
        ("today", "2026-03-16 10:25", "2026-03-16 00:00"),
        ("today", "2026-03-16 00:00", "2026-03-16 00:00"),
        ("today", "2026-03-16 06:59", "2026-03-16 00:00"),  # UTC is still the 15th
        ("24h", "2026-03-16 10:25", "2026-03-15 11:00"),
        ("24h", "2026-03-16 10:00", "2026-03-15 11:00"),
        ("month", "2026-03-16 10:25", "2026-03-01 00:00"),
        ("month", "2026-03-01 00:30", "2026-03-01 00:00"),  # UTC is still February
        ("ytd", "2026-03-16 10:25", "2026-01-01 00:00"),
        ("ytd", "2026-01-01 00:30", "2026-01-01 00:00"),  # UTC is still 2025
    ],
)
def test_window_start_in_local_time(window: str, now: str, start: str) -> None:
    assert window_start(window, vn(now)) == vn(start)


def test_24h_window_starts_23_hours_before_the_current_hour() -> None:
    now = vn("2026-03-16 10:25:30")
    assert window_start("24h", now) == vn("2026-03-16 10:00") - 23 * HOUR


def test_window_hours() -> None:
    assert window_hours("today", vn("2026-03-16 10:30")) == pytest.approx(10.5)
    assert window_hours("24h", vn("2026-03-16 10:30")) == pytest.approx(23.5)
    assert window_hours("month", vn("2026-03-02 00:00")) == pytest.approx(24)
    assert window_hours("ytd", vn("2026-01-01 12:00")) == pytest.approx(12)
    # at the window's very start, at least one second, never zero
    assert window_hours("today", vn("2026-03-16 00:00")) == pytest.approx(1 / HOUR)


def test_unknown_window() -> None:
    with pytest.raises(
        ValueError, match=r"unknown window 'week'; expected one of today, 24h, month, ytd"
    ):
        window_start("week", R)
    assert WINDOWS == ("today", "24h", "month", "ytd")


def test_hour_of_follows_local_hours() -> None:
    assert hour_of(vn("2026-03-16 10:00")) == hour_of(vn("2026-03-16 10:59:59"))
    assert hour_of(vn("2026-03-16 11:00")) == hour_of(vn("2026-03-16 10:00")) + 1
    assert hour_of(vn("2026-03-16 10:00")) * HOUR == vn("2026-03-16 10:00")


def test_day_of_turns_at_local_midnight() -> None:
    midnight = vn("2026-03-16 00:00")
    assert day_of(midnight) == day_of(midnight - 1) + 1
    assert day_of(midnight) == day_of(vn("2026-03-16 23:59:59"))
    assert day_of(vn("1970-01-01 00:00")) == 0
    assert day_of(midnight) == (datetime(2026, 3, 16) - datetime(1970, 1, 1)).days
