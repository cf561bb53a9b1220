import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.sla import B_OVERDUE, B_PAUSED, OPEN
from streams.dossiers import Deltas, DossierStore
from streams.scopes import ScopeIndex
from tests.streams.helpers import event, vn, world


def store() -> DossierStore:
    registry, calendar = world()
    return DossierStore(calendar, registry, ScopeIndex(registry))


def lifecycle(d: str) -> list:
    return [
        event("received", d, "2026-03-16 09:00"),
        event("accepted", d, "2026-03-16 09:30"),
        event("supplement_requested", d, "2026-03-17 09:00"),
        event("supplement_received", d, "2026-03-18 09:00"),
        event("paid", d, "2026-03-18 10:00", online=True),
        event("processed", d, "2026-03-20 08:30"),
        event("result_digitized", d, "2026-03-20 08:40"),
        event("result_returned", d, "2026-03-20 09:00"),
        event("rated", d, "2026-03-21 10:00", score=5),
    ]


def counters(events, now: float):
    s = store()
    out = Deltas()
    for ev in events:
        s.apply(ev, now, out)
    s.collect_levels(out)
    s.collect_flows(out)
    flows: dict = {}
    for combo, fid, t, amount in out.flows:
        for c, f, tt, a in zip(
            combo.tolist(), fid.tolist(), t.tolist(), amount.tolist(), strict=True
        ):
            key = (s.scopes.combos[c], f, tt)
            flows[key] = flows.get(key, 0) + a
    levels: dict = {}
    for _minute, combo, old, new in out.levels:
        for c, o, n in zip(combo.tolist(), old.tolist(), new.tolist(), strict=True):
            levels[(s.scopes.combos[c], o)] = levels.get((s.scopes.combos[c], o), 0) - 1
            levels[(s.scopes.combos[c], n)] = levels.get((s.scopes.combos[c], n), 0) + 1
    rows = {d: s.describe(r, now) for d, r in s.rows.items()}
    return (
        {k: v for k, v in flows.items() if v},
        {k: v for k, v in levels.items() if v and k[1]},
        rows,
    )


def test_a_dossier_finished_on_time_after_one_supplement() -> None:
    s = store()
    for ev in lifecycle("D1"):
        assert s.apply(ev, vn("2026-03-25 10:00"), Deltas())
    d = s.describe(s.row_of("D1"), vn("2026-03-25 10:00"))
    # 3 working days from Mon 09:00, one working day paused: due Fri 09:00
    assert d["due"] == vn("2026-03-20 09:00")
    assert d["finish_class"] == "on_time"
    assert d["supplement_requests"] == 1
    assert d["status"] == "rated"


def test_an_event_applied_twice_changes_nothing_the_second_time() -> None:
    s = store()
    ev = event("received", "D1", "2026-03-16 09:00")
    assert s.apply(ev, vn("2026-03-16 10:00"), Deltas())
    assert not s.apply(ev, vn("2026-03-16 10:00"), Deltas())
    assert s.duplicates == 1


def test_levels_follow_time_through_the_wheel() -> None:
    s = store()
    out = Deltas()
    s.apply(event("received", "D1", "2026-03-16 09:00"), vn("2026-03-16 09:00"), out)
    row = s.row_of("D1")
    assert int(s.c.mask[row]) & OPEN
    # due Thu 09:00; a minute later it is overdue
    assert s.advance(vn("2026-03-19 09:01"), out) >= 1
    assert int(s.c.mask[row]) & B_OVERDUE
    overdue = [a for a in out.alerts if a.transition == "overdue"]
    assert overdue and overdue[0].at == vn("2026-03-19 09:00")


def test_a_supplement_request_pauses_and_clears_the_alert() -> None:
    s = store()
    out = Deltas()
    s.apply(event("received", "D1", "2026-03-16 09:00"), vn("2026-03-16 09:00"), out)
    s.advance(vn("2026-03-19 10:00"), out)
    s.apply(event("supplement_requested", "D1", "2026-03-19 10:00"), vn("2026-03-19 10:00"), out)
    assert int(s.c.mask[s.row_of("D1")]) & B_PAUSED
    # time passed in one step, yet each change keeps its own instant (as a
    # worker that looked every second would have seen them); the pause clears
    # the alert at the request's instant, not when the worker noticed it
    got = [(a.transition, a.at) for a in out.alerts]
    assert got == [
        ("at_risk", vn("2026-03-18 13:12")),  # 80 % of 24 working hours: 7 + 8 + 4.2
        ("overdue", vn("2026-03-19 09:00")),
        ("cleared", vn("2026-03-19 10:00")),
    ]


def test_cleared_carries_the_instant_of_the_event_that_cleared_it() -> None:
    s = store()
    out = Deltas()
    s.apply(event("received", "D1", "2026-03-16 09:00"), vn("2026-03-16 09:00"), out)
    s.advance(vn("2026-03-19 10:00"), out)
    # the closing event reaches the worker an hour after it happened
    s.apply(event("processed", "D1", "2026-03-19 10:00"), vn("2026-03-19 11:00"), out)
    assert (out.alerts[-1].transition, out.alerts[-1].at) == (
        "cleared",
        vn("2026-03-19 10:00"),
    )


def test_anomalies_are_flagged_once_whatever_the_order() -> None:
    for order in (1, -1):
        s = store()
        evs = [
            event("received", "D1", "2026-03-16 09:00"),
            event("withdrawn", "D1", "2026-03-16 10:00"),
            event("processed", "D1", "2026-03-17 10:00"),
        ][::order]
        for ev in evs:
            s.apply(ev, vn("2026-03-18 10:00"), Deltas())
        assert s.anomaly_counts == {"after_close": 1}
        assert s.describe(s.row_of("D1"), vn("2026-03-18 10:00"))["anomalies"] == ["after_close"]


def test_a_later_receipt_with_other_attributes_moves_the_dossier() -> None:
    s = store()
    out = Deltas()
    late = event("received", "D1", "2026-03-16 10:00")
    early = event("received", "D1", "2026-03-16 09:00", commune="00160", agency="ubnd-00160")
    s.apply(late, vn("2026-03-16 11:00"), out)
    s.apply(early, vn("2026-03-16 11:00"), out)
    assert s.describe(s.row_of("D1"), vn("2026-03-16 11:00"))["commune"] == "00160"
    assert s.anomaly_counts["received_twice"] == 1


def test_two_receipts_at_one_instant_give_the_same_dossier_in_either_order() -> None:
    a = event("received", "D1", "2026-03-16 09:00", n=1)
    b = event("received", "D1", "2026-03-16 09:00", n=2, commune="00004", agency="ubnd-00004")
    apology = "2026-03-20 09:00"
    letters = [
        event("apology_issued", "D1", apology, n=1, new_due="2026-03-25T17:00:00+07:00"),
        event("apology_issued", "D1", apology, n=2, new_due="2026-03-27T17:00:00+07:00"),
    ]
    now = vn("2026-03-20 10:00")
    results = []
    for events in ([a, b, *letters], [b, a, *letters[::-1]]):
        flows, levels, rows = counters(events, now)
        results.append(rows["D1"])
        assert sum(flows.values()) == 3 and sum(levels.values()) == 1
    assert results[0] == results[1]
    assert "received_twice" in results[0]["anomalies"]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), dup=st.integers(0, 9))
def test_any_order_with_repeats_gives_the_same_counters_and_states(seed: int, dup: int) -> None:
    events = (
        lifecycle("D1")
        + lifecycle("D2")[:5]
        + [
            event("received", "D3", "2026-03-19 16:30"),
            event("withdrawn", "D3", "2026-03-20 09:00"),
        ]
    )
    now = vn("2026-03-30 10:00")
    expected = counters(events, now)
    rng = random.Random(seed)
    shuffled = events + rng.sample(events, dup)
    rng.shuffle(shuffled)
    assert counters(shuffled, now) == expected
