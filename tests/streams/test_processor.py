from typing import Any

from ioc.clock import EventTimeClock
from ioc.kpis import F, L
from streams.processor import PartitionProcessor
from streams.scopes import ScopeIndex
from tests.streams.helpers import event, vn, world


def processor(now: str = "2026-03-16 08:00") -> PartitionProcessor:
    registry, calendar = world()
    return PartitionProcessor(0, calendar, registry, ScopeIndex(registry), vn(now))


def events() -> list:
    return [
        event("received", "D1", "2026-03-16 09:00"),
        event("received", "D2", "2026-03-16 09:05"),
        event("supplement_requested", "D2", "2026-03-16 10:00"),
        event("processed", "D1", "2026-03-17 10:00"),
        event("received", "D3", "2026-03-17 10:30"),
    ]


def test_event_time_moves_the_clock_and_samples_levels_each_minute() -> None:
    p = processor()
    clock = EventTimeClock()
    assert p.apply(events(), 0.0, clock) == 5
    assert clock.now() == vn("2026-03-17 10:30")
    out = p.drain()
    assert [seq for seq, _ in out.raw] == [1, 2, 3, 4, 5]
    assert len(out.levels) and (out.level_minutes * 60 < vn("2026-03-17 10:31")).all()
    assert len(set(out.level_minutes.tolist())) > 1  # one sample per minute of change
    assert p.drain().seq == 5  # numbering continues


def test_a_restored_processor_equals_the_original() -> None:
    evs = events()
    p = processor()
    clock = EventTimeClock()
    p.apply(evs[:3], 0.0, clock)
    snap = p.drain(snapshot=True)
    p.apply(evs[3:], 0.0, clock)
    after = p.drain()
    registry, calendar = world()
    q = PartitionProcessor(0, calendar, registry, ScopeIndex(registry), clock.now())
    q.restore(snap.snapshot, after.seq, evs[3:])
    province_p = p.scopes.province
    province_q = q.scopes.province
    assert q.windows.levels[province_q].tolist() == p.windows.levels[province_p].tolist()
    assert q.seq == 5
    for d in ("D1", "D2", "D3"):
        assert q.store.describe(q.store.row_of(d), clock.now()) == p.store.describe(
            p.store.row_of(d), clock.now()
        )


def test_counters_and_levels_of_a_scope() -> None:
    p = processor()
    p.apply(events(), 0.0, EventTimeClock())
    p.move(vn("2026-03-17 11:00"))
    counters = p.updates()["commune:00166"]
    assert counters["flows"]["today"][F["received"]] == 1
    assert counters["flows"]["month"][F["received"]] == 3
    assert counters["flows"]["month"][F["finished"]] == 1
    assert counters["levels"][L["open"]] == 2
    assert counters["levels"][L["paused"]] == 1


def test_finished_dossiers_are_evicted_after_the_retention() -> None:
    p = processor()
    p.retention = 86400
    p.apply(events(), 0.0, EventTimeClock())
    p.move(vn("2026-03-20 10:00"))
    assert p.evict_finished() == 1
    assert p.store.row_of("D1") is None and p.store.row_of("D2") is not None


def test_events_for_an_evicted_dossier_open_no_new_one() -> None:
    p = processor()
    p.retention = 86400
    clock = EventTimeClock()
    p.apply(events(), 0.0, clock)
    clock.observe(vn("2026-03-20 10:00"))
    p.move(clock.now())
    snap = p.drain(snapshot=True)  # evicts D1, closed on the 17th
    before = p.updates()["province"]
    late = [
        event("received", "D1", "2026-03-16 09:00"),  # the receipt sent again
        event("rated", "D1", "2026-03-20 11:00", score=5),
    ]
    assert p.apply(late, 0.0, clock) == 1  # the rating is kept; the receipt is stored already
    p.move(vn("2026-04-30 10:00"))
    assert p.store.row_of("D1") is None and p.store.after_eviction == 2
    counters = p.all_counters()["province"]
    assert counters["flows"]["ytd"] == before["flows"]["ytd"]
    assert [a.dossier_id for a in p.drain().alerts if a.dossier_id == "D1"] == []

    registry, calendar = world()
    q = PartitionProcessor(0, calendar, registry, ScopeIndex(registry), clock.now())
    q.restore(snap.snapshot, snap.seq, [])
    assert "D1" in q.store.forgotten and "D2" not in q.store.forgotten
    assert q.apply(late, 0.0, EventTimeClock(clock.now())) == 1
    assert q.store.row_of("D1") is None and q.store.after_eviction == 2


def test_a_snapshot_in_several_chunks_restores_every_dossier(monkeypatch) -> None:
    import streams.processor as module

    monkeypatch.setattr(module, "SNAPSHOT_ROWS", 2)
    p = processor()
    clock = EventTimeClock()
    p.apply(events(), 0.0, clock)
    snap = p.drain(snapshot=True)
    assert snap.snapshot is not None and len(snap.snapshot) == 2  # 3 dossiers, 2 per chunk
    registry, calendar = world()
    q = PartitionProcessor(0, calendar, registry, ScopeIndex(registry), clock.now())
    q.restore(snap.snapshot, snap.seq, [])
    assert sorted(q.store.rows) == ["D1", "D2", "D3"]
    for d in ("D1", "D2", "D3"):
        assert q.store.describe(q.store.row_of(d), clock.now()) == p.store.describe(
            p.store.row_of(d), clock.now()
        )


def drained(proc: PartitionProcessor) -> tuple[list[Any], list[Any]]:
    """The 1-minute level samples (minute, scope, levels) and the SLA
    transitions (dossier, transition, instant) a drain hands over."""
    d = proc.drain()
    keys = proc.scopes.keys
    levels = sorted(
        (int(m), keys[int(s)], tuple(int(v) for v in lv))
        for m, s, lv in zip(d.level_minutes, d.level_scopes, d.levels, strict=True)
    )
    return levels, [a.key() for a in d.alerts]


def test_the_levels_at_an_instant_do_not_depend_on_when_the_worker_looked() -> None:
    """Live, a worker looks every fraction of a second; on replay, only when
    the next event comes. Each level change keeps its own instant, so the
    1-minute series and the SLA transitions are the same."""
    load = [
        event("received", "D1", "2026-03-16 09:00"),
        event("received", "D2", "2026-03-16 09:30", allotted_working_days=1),
        event("processed", "D2", "2026-03-18 09:05"),
        event("received", "D3", "2026-03-18 16:00"),
    ]
    end = vn("2026-03-20 17:00")

    live = processor()
    t = vn("2026-03-16 08:00")
    pending = list(load)
    while t <= end:  # a wall clock: every 20 s, the events as they happen
        due = [ev for ev in pending if ev.ts <= t]
        pending = [ev for ev in pending if ev.ts > t]
        live.apply(due, t)
        live.move(t)
        t += 20
    replay = processor()
    clock = EventTimeClock()
    replay.apply(load, 0.0, clock)
    clock.observe(end)
    replay.move(clock.now())

    live_levels, live_transitions = drained(live)
    replay_levels, replay_transitions = drained(replay)
    assert live_levels == replay_levels
    assert live_transitions == replay_transitions
    assert {t for _, t, _ in live_transitions} == {"at_risk", "overdue", "cleared"}
