"""Rolling windows of sensor readings: cases computed by hand with the
arithmetic beside each, late and repeated readings against an ordered pass
on a seeded random stream, the horizon, and state round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ioc.sensor_windows import (
    KEEP_S,
    P95,
    WINDOWS,
    Last,
    Mean,
    SensorWindows,
    Series,
    WindowStats,
    window_stats,
)

H = 3600.0


def four() -> SensorWindows:
    """pm25 10, 20, 30, 40 at t = 0, 20, 40, 60."""
    w = SensorWindows()
    for t, v in [(0, 10), (20, 20), (40, 30), (60, 40)]:
        assert w.add("aq-1", t, {"pm25": v})
    return w


def test_one_minute_window_by_hand() -> None:
    # (60 - 60, 60] = (0, 60] holds t = 20, 40, 60: 20, 30, 40 (t = 0 is out)
    got = four().stats("aq-1", 60)["pm25"]["1m"]
    assert got == {
        "mean": 30.0,  # (20 + 30 + 40) / 3
        "min": 20.0,
        "max": 40.0,
        "p95": 39.0,  # rank 0.95 * (3 - 1) = 1.9: 30 + 0.9 * (40 - 30)
        "count": 3,
        "last": 40.0,
        "last_ts": 60.0,
    }


def test_longer_windows_hold_all_four() -> None:
    got = four().stats("aq-1", 60)["pm25"]
    # (-840, 60] holds all: mean (10 + 20 + 30 + 40) / 4 = 25;
    # p95 rank 0.95 * 3 = 2.85: 30 + 0.85 * (40 - 30) = 38.5
    for name in ("15m", "1h", "24h"):
        stats = got[name]
        assert stats is not None
        assert stats["mean"] == 25.0
        assert stats["min"] == 10.0
        assert stats["count"] == 4
        assert stats["p95"] == pytest.approx(38.5)


def test_window_is_open_at_its_start_closed_at_its_end() -> None:
    w = four()
    # ending 80: (20, 80] holds 30, 40 only; p95 rank 0.95 * 1: 30 + 0.95 * 10
    stats = w.stats("aq-1", 80)["pm25"]["1m"]
    assert stats is not None
    assert (stats["mean"], stats["count"], stats["min"]) == (35.0, 2, 30.0)
    assert stats["p95"] == pytest.approx(39.5)
    # ending 40: (-20, 40] holds 10, 20, 30; the reading at 60 is in the future
    stats = w.stats("aq-1", 40)["pm25"]["1m"]
    assert stats is not None
    assert (stats["mean"], stats["count"], stats["last"], stats["last_ts"]) == (20.0, 3, 30.0, 40)


def test_empty_window_is_none_not_zero() -> None:
    w = four()
    # ending 200: (140, 200] holds nothing; (-700, 200] still holds all four
    got = w.stats("aq-1", 200)["pm25"]
    assert got["1m"] is None
    assert got["15m"] is not None and got["15m"]["count"] == 4
    # before the first reading: (-100, -40] is empty in every window
    assert all(v is None for v in w.stats("aq-1", -40)["pm25"].values())
    assert w.stats("unknown", 60) == {}


def test_a_late_reading_is_inserted_in_time_order() -> None:
    w = four()
    assert w.add("aq-1", 30, {"pm25": 25})
    # (0, 60] now holds 20, 25, 30, 40: mean 115 / 4 = 28.75;
    # p95 rank 0.95 * 3 = 2.85: 30 + 0.85 * 10 = 38.5; last still the one at 60
    stats = w.stats("aq-1", 60)["pm25"]["1m"]
    assert stats is not None
    assert stats["mean"] == 28.75
    assert stats["p95"] == pytest.approx(38.5)
    assert (stats["last"], stats["last_ts"]) == (40.0, 60.0)
    # ending 30: (-30, 30] holds 10, 20, 25: the late one is the last there
    stats = w.stats("aq-1", 30)["pm25"]["1m"]
    assert stats is not None
    assert (stats["count"], stats["last"], stats["last_ts"]) == (3, 25.0, 30.0)


def test_a_repeat_is_ignored_and_the_first_value_wins() -> None:
    w = four()
    before = w.state()
    assert not w.add("aq-1", 40, {"pm25": 99})  # t = 40 is held with 30
    assert not w.add("aq-1", 60, {"pm25": 40})
    assert w.state() == before
    # a repeat for one measure, new for another: the new one is kept
    assert w.add("aq-1", 40, {"pm25": 99, "pm10": 50})
    assert w.stats("aq-1", 60)["pm25"]["1m"] == four().stats("aq-1", 60)["pm25"]["1m"]
    pm10 = w.stats("aq-1", 60)["pm10"]["1m"]
    assert pm10 is not None and pm10["count"] == 1


def test_non_finite_values_are_not_kept() -> None:
    w = SensorWindows()
    assert not w.add("aq-1", 0, {"pm25": math.nan, "pm10": math.inf})
    assert w.sensors() == [] and w.newest("aq-1") is None
    assert not w.add("aq-1", math.nan, {"pm25": 1.0})
    assert w.add("aq-1", 0, {"pm25": -math.inf, "pm10": 12.5})
    assert w.measures("aq-1") == ["pm10"]


def test_readings_beyond_the_horizon_are_ignored_and_pruned() -> None:
    assert KEEP_S == 31 * H  # 24 h of the daily index + 7 for its first 8-hour O3 means
    w = SensorWindows()
    assert w.add("aq-1", 0, {"pm25": 1})
    assert w.add("aq-1", KEEP_S, {"pm25": 2})  # horizon KEEP_S - KEEP_S = 0: t = 0 stays
    assert w.state()["sensors"]["aq-1"]["pm25"]["ts"] == [0.0, KEEP_S]
    assert w.add("aq-1", KEEP_S + 1, {"pm25": 3})  # horizon 1: t = 0 goes
    assert w.state()["sensors"]["aq-1"]["pm25"]["ts"] == [KEEP_S, KEEP_S + 1]
    assert not w.add("aq-1", 0.5, {"pm25": 9})  # older than the horizon 1
    assert w.add("aq-1", 1, {"pm25": 4})  # at the horizon: kept
    assert w.newest("aq-1") == KEEP_S + 1
    # the horizon is the sensor's: another sensor is not pruned by it
    assert w.add("aq-2", 0, {"pm25": 5})


def test_a_measure_left_without_readings_goes() -> None:
    w = SensorWindows()
    assert w.add("aq-1", 0, {"pm25": 1, "o3": 7})
    assert w.add("aq-1", 2 * KEEP_S, {"pm25": 2})  # o3 at 0 is pruned, o3 with it
    assert w.measures("aq-1") == ["pm25"]
    assert list(w.stats("aq-1", 2 * KEEP_S)) == ["pm25"]


def test_keep_must_cover_the_longest_window() -> None:
    with pytest.raises(ValueError, match="24 h"):
        SensorWindows(keep_s=WINDOWS["24h"] - 1)
    SensorWindows(keep_s=WINDOWS["24h"])


def test_hourly_means_by_hand() -> None:
    w = SensorWindows()
    # t = 0 -> 5; t = 1800 -> 10; t = 3600 -> 20; t = 3601 -> 40
    for t, v in [(0, 5), (1800, 10), (H, 20), (H + 1, 40)]:
        w.add("aq-1", t, {"pm25": v})
    # hours ending 0, 3600, 7200, 10800:
    #   (-3600, 0]    holds 5                -> 5
    #   (0, 3600]     holds 10, 20           -> 15 (the reading at 3600 is this hour's)
    #   (3600, 7200]  holds 40               -> 40
    #   (7200, 10800] holds nothing          -> None
    assert w.hourly_means("aq-1", "pm25", 3 * H, 4) == [5.0, 15.0, 40.0, None]
    assert w.hourly_means("aq-1", "pm10", 3 * H, 2) == [None, None]
    assert w.hourly_means("aq-1", "pm25", 3 * H, 0) == []


def test_aggregators_take_chunks_in_any_order() -> None:
    ts = np.array([0.0, 20.0, 40.0, 60.0])
    values = np.array([10.0, 20.0, 30.0, 40.0])
    for agg in (WindowStats(), Mean(), P95(), Last()):
        whole = agg.result(agg.add(agg.initialize(), ts, values))
        late_first = agg.add(agg.initialize(), ts[2:], values[2:])
        parts = agg.add(late_first, ts[:2], values[:2])
        assert agg.result(parts) == whole
    empty = WindowStats()
    assert empty.result(empty.initialize()) == {
        "mean": None,
        "min": None,
        "max": None,
        "p95": None,
        "count": 0,
        "last": None,
        "last_ts": None,
    }


def test_window_stats_on_a_series() -> None:
    s = Series(capacity=1)  # grows as it fills
    for t in [50.0, 10.0, 30.0, 20.0, 40.0, 30.0]:  # 30 twice: the second is a repeat
        s.add(t, t / 10)
    assert s.ts.tolist() == [10.0, 20.0, 30.0, 40.0, 50.0]
    # (20, 50] holds 3, 4, 5
    got = window_stats(s, 30, 50)
    assert got is not None and (got["mean"], got["count"], got["last"]) == (4.0, 3, 5.0)
    assert window_stats(s, 30, 5) is None


def _stream(seed: int) -> list[tuple[str, float, dict[str, float]]]:
    """Readings of 12 sensors over 40 hours (so the horizon prunes), every
    ts unique per sensor, some measures missing, some values NaN."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, float, dict[str, float]]] = []
    for k in range(12):
        n = int(rng.integers(50, 200))
        ts = np.unique(np.round(rng.uniform(0, 40 * H, n), 1))
        for t in ts.tolist():
            values: dict[str, float] = {}
            if rng.random() < 0.9:
                values["pm25"] = float(np.round(rng.gamma(2.0, 20.0), 1))
            if rng.random() < 0.6:
                values["o3"] = float(np.round(rng.uniform(0, 300), 2))
            if rng.random() < 0.05:
                values["pm10"] = math.nan
            out.append((f"aq-{k}", t, values))
    out.sort(key=lambda r: r[1])
    return out


def _fed(readings: list[tuple[str, float, dict[str, float]]]) -> SensorWindows:
    w = SensorWindows()
    for sensor, t, values in readings:
        w.add(sensor, t, values)
    return w


def _everything(w: SensorWindows) -> list[object]:
    out: list[object] = [w.state()]
    for sensor in w.sensors():
        newest = w.newest(sensor)
        assert newest is not None
        for end in (newest, newest - 600, newest - 5 * H, math.floor(newest / H) * H):
            out.append(w.stats(sensor, end))
        end_hour = math.ceil(newest / H) * H
        for measure in ("pm25", "o3"):
            out.append(w.hourly_means(sensor, measure, end_hour, 31))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_late_and_repeated_readings_give_the_ordered_result(seed: int) -> None:
    readings = _stream(seed)
    rng = np.random.default_rng(seed + 100)
    ordered = _everything(_fed(readings))

    shuffled = [readings[i] for i in rng.permutation(len(readings))]
    assert _everything(_fed(shuffled)) == ordered

    repeated = readings + readings
    repeated = [repeated[i] for i in rng.permutation(len(repeated))]
    assert _everything(_fed(repeated)) == ordered

    twice = [r for r in readings for _ in range(2)]
    assert _everything(_fed(twice)) == ordered


def test_state_round_trips_through_json_and_bytes() -> None:
    readings = _stream(7)
    head, tail = readings[: len(readings) // 2], readings[len(readings) // 2 :]
    live = _fed(head)

    from_json = SensorWindows()
    from_json.restore(json.loads(json.dumps(live.state())))
    from_bytes = SensorWindows.from_bytes(live.state_bytes())
    assert from_json.state() == live.state()
    assert from_bytes.state() == live.state()
    assert _everything(from_json) == _everything(live)
    assert _everything(from_bytes) == _everything(live)

    # and they go on taking readings as the original does
    for w in (live, from_json, from_bytes):
        for sensor, t, values in tail:
            w.add(sensor, t, values)
    assert _everything(from_json) == _everything(live) == _everything(from_bytes)
    assert _everything(live) == _everything(_fed(readings))


def test_restore_refuses_a_broken_state_and_prunes_to_its_own_keep() -> None:
    w = SensorWindows()
    bad = {"keep_s": KEEP_S, "sensors": {"aq-1": {"pm25": {"ts": [2.0, 1.0], "values": [1, 2]}}}}
    with pytest.raises(ValueError, match="increasing"):
        w.restore(bad)
    with pytest.raises(ValueError, match="not a"):
        SensorWindows.from_bytes(b"{}\n")
    long = SensorWindows(keep_s=40 * H)
    long.add("aq-1", 0, {"pm25": 1})
    long.add("aq-1", 35 * H, {"pm25": 2})
    short = SensorWindows()  # 31 h: the reading at 0 is beyond 35 h - 31 h
    short.restore(long.state())
    assert short.state()["sensors"]["aq-1"]["pm25"]["ts"] == [35 * H]
    assert SensorWindows.from_bytes(long.state_bytes()).keep_s == 40 * H


def test_sensors_newest_and_drop() -> None:
    w = four()
    w.add("aq-0", 5, {"o3": 1})
    assert w.sensors() == ["aq-0", "aq-1"]
    assert w.newest("aq-1") == 60.0
    w.drop("aq-1")
    w.drop("never-seen")
    assert w.sensors() == ["aq-0"] and w.newest("aq-1") is None
    assert w.add("aq-1", 0, {"pm25": 3})  # a dropped sensor starts afresh


def test_series_matches_a_sorted_dict_through_growth_and_compaction() -> None:
    # small capacity, mostly in order with late ones and repeats, pruning
    # that frees the front (so the arrays both grow and move their readings
    # to the front): they always hold what a dict of first values, sorted, holds
    rng = np.random.default_rng(11)
    s, ref = Series(capacity=2), {}
    for step in range(3000):
        t = float(step // 2 - rng.integers(0, 20))
        value = float(rng.integers(0, 100))
        added = s.add(t, value)
        assert added == (t not in ref)
        ref.setdefault(t, value)
        if step % 50 == 49:
            before = step // 2 - 30
            s.prune(before)
            ref = {k: v for k, v in ref.items() if k >= before}
        assert s.ts.tolist() == sorted(ref)
        assert s.values.tolist() == [ref[k] for k in sorted(ref)]


def test_the_percentile_is_numpys_to_the_last_bit() -> None:
    from ioc.sensor_windows import percentile

    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 4, 5, 20, 21, 100, 1441):
        for _ in range(50):
            values = rng.normal(50, 20, n)
            assert percentile(values, 95) == float(np.percentile(values, 95))
