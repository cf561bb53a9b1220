import numpy as np

from ioc.kpis import F, L
from ioc.sla import B_AT_RISK, OPEN
from streams.dossiers import Deltas
from streams.scopes import ScopeIndex
from streams.windows import ScopeWindows
from tests.streams.helpers import vn, world


def setup(now: str) -> tuple[ScopeWindows, ScopeIndex, int]:
    registry, _ = world()
    scopes = ScopeIndex(registry)
    combo = scopes.combo("00166", "ubnd-00166", "hcc-00166", "1.000001", "ho-tich")
    return ScopeWindows(scopes, vn(now)), scopes, combo


def received_at(combo: int, *times: str) -> Deltas:
    d = Deltas()
    n = len(times)
    d.flows.append(
        (
            np.full(n, combo, dtype=np.int32),
            np.full(n, F["received"], dtype=np.int64),
            np.array([vn(t) for t in times]),
            np.ones(n, dtype=np.int64),
        )
    )
    return d


def test_flows_land_in_the_windows_that_contain_them() -> None:
    w, scopes, combo = setup("2026-03-16 10:00")
    w.apply(
        received_at(
            combo, "2026-03-16 09:30", "2026-03-15 20:00", "2026-02-10 09:00", "2025-12-31 09:00"
        )
    )
    flows = w.flows(scopes.province)
    got = {k: int(v[F["received"]]) for k, v in flows.items()}
    # today: only the 09:30; 24h: since 11:00 yesterday; March; 2026
    assert got == {"today": 1, "24h": 2, "month": 2, "ytd": 3}


def test_day_month_and_year_roll() -> None:
    w, scopes, combo = setup("2026-12-31 23:50")
    w.apply(received_at(combo, "2026-12-31 23:45"))
    assert w.roll(vn("2027-01-01 00:10"))
    flows = w.flows(scopes.province)
    assert {k: int(v[F["received"]]) for k, v in flows.items()} == {
        "today": 0,
        "24h": 1,
        "month": 0,
        "ytd": 0,
    }


def test_the_24h_window_forgets_hours_as_they_roll_out() -> None:
    w, scopes, combo = setup("2026-03-16 10:00")
    w.apply(received_at(combo, "2026-03-16 09:10"))
    # the window is this hour and the 23 before it
    w.roll(vn("2026-03-17 08:05"))
    assert int(w.flows(scopes.province)["24h"][F["received"]]) == 1
    w.roll(vn("2026-03-17 09:05"))
    assert int(w.flows(scopes.province)["24h"][F["received"]]) == 0


def test_flows_dated_after_today_wait_for_their_day() -> None:
    w, scopes, combo = setup("2026-03-16 23:59")
    w.apply(received_at(combo, "2026-03-17 00:01"))
    assert int(w.flows(scopes.province)["today"][F["received"]]) == 0
    w.roll(vn("2026-03-17 00:02"))
    assert int(w.flows(scopes.province)["today"][F["received"]]) == 1


def test_levels_move_with_mask_changes() -> None:
    w, scopes, combo = setup("2026-03-16 10:00")
    d = Deltas()
    c = np.array([combo, combo], dtype=np.int32)
    minute = np.full(2, int(vn("2026-03-16 09:59") // 60))
    d.levels.append((minute, c, np.array([0, OPEN]), np.array([OPEN, OPEN | B_AT_RISK])))
    w.apply(d)
    levels = w.levels[scopes.get("commune:00166")]
    # one dossier opened, another became at risk
    assert levels[L["open"]] == 1 and levels[L["at_risk"]] == 1


def test_cells_sum_per_scope_and_bucket() -> None:
    w, scopes, combo = setup("2026-03-16 10:00")
    w.apply(received_at(combo, "2026-03-16 09:30", "2026-03-16 09:31", "2026-03-16 08:00"))
    hourly, minutely = w.take_flows()
    province = hourly.scope == scopes.province
    assert sorted(hourly.values[province, F["received"]].tolist()) == [1, 2]
    assert len(minutely) == 3 * 3  # province, commune, agency; three minutes
    assert w.take_flows()[0].values.shape[0] == 0


def test_level_samples_give_each_minutes_end_state() -> None:
    w, scopes, combo = setup("2026-03-16 10:00")
    m = int(vn("2026-03-16 10:00") // 60)
    d = Deltas()
    # minute m: two dossiers open; minute m+2: one becomes at risk, one closes
    d.levels.append(
        (
            np.array([m, m, m + 2, m + 2]),
            np.full(4, combo, dtype=np.int32),
            np.array([0, 0, OPEN, OPEN]),
            np.array([OPEN, OPEN, OPEN | B_AT_RISK, 0]),
        )
    )
    w.apply(d)
    minutes, scope, levels = w.take_level_samples()
    commune = scopes.get("commune:00166")
    rows = {int(mm): lv for mm, s, lv in zip(minutes, scope, levels, strict=True) if s == commune}
    assert sorted(rows) == [m, m + 2]
    assert rows[m][L["open"]] == 2 and rows[m][L["at_risk"]] == 0
    assert rows[m + 2][L["open"]] == 1 and rows[m + 2][L["at_risk"]] == 1
    # centres and procedures are not kept at minute resolution
    assert scopes.get("centre:hcc-00166") not in scope.tolist()
    assert len(w.take_level_samples()[0]) == 0


def test_a_busy_scope_is_taken_at_most_once_per_gap_a_quiet_one_at_once() -> None:
    w, scopes, combo = setup("2026-03-16 08:00")
    w.apply(received_at(combo, "2026-03-16 09:00"))
    province = scopes.province
    first = w.take_dirty(now=100.0, min_gap=0.5)[0].tolist()
    assert province in first  # the first change after a quiet spell: at once
    w.apply(received_at(combo, "2026-03-16 09:01"))
    assert province not in w.take_dirty(now=100.2, min_gap=0.5)[0].tolist()  # held back
    assert w.dirty[province]  # and kept for later
    assert province in w.take_dirty(now=100.5, min_gap=0.5)[0].tolist()
    assert w.take_dirty(now=200.0, min_gap=0.5)[0].tolist() == []  # nothing changed since


def test_each_taken_scope_carries_the_edge_time_of_its_oldest_change() -> None:
    w, scopes, combo = setup("2026-03-16 08:00")
    w.apply(received_at(combo, "2026-03-16 09:00"), edge=50.0)
    w.apply(received_at(combo, "2026-03-16 09:01"), edge=60.0)  # pending still: 50 stays
    taken, edges = w.take_dirty()
    assert dict(zip(taken.tolist(), edges.tolist(), strict=True))[scopes.province] == 50.0
    w.apply(received_at(combo, "2026-03-16 09:02"))  # no edge known
    taken, edges = w.take_dirty()
    assert np.isnan(edges[taken.tolist().index(scopes.province)])
