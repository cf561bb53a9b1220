"""A partition's restart against real PostgreSQL, and how the worker merges
and acknowledges messages (the faust app itself runs in the integration
tests against a real broker)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams import worker as worker_app


@pytest.mark.integration
def test_sla_transitions_due_while_no_worker_ran_are_sent_after_the_restart(
    database_url: str,
) -> None:
    from ioc.clock import ManualClock
    from ioc.settings import Settings
    from streams.processor import PartitionProcessor
    from streams.scopes import ScopeIndex
    from streams.sinks.postgres import PostgresSink
    from streams.sinks.schema import migrate
    from tests.streams.helpers import event, vn, world

    migrate(database_url)
    registry, calendar = world()

    async def run() -> list[dict[str, Any]]:
        sink = PostgresSink(database_url)
        await sink.connect()
        # the last commit before the stop: a dossier received, on track
        before = PartitionProcessor(
            0, calendar, registry, ScopeIndex(registry), vn("2026-03-16 08:00")
        )
        before.apply([event("received", "D1", "2026-03-16 09:00")], vn("2026-03-16 10:00"))
        await sink.write(before.drain(snapshot=True), {})
        assert before.drain().alerts == []
        # the worker comes back a week later, after the dossier fell due
        worker = worker_app.ProcedureWorker(
            Settings(),
            registry,
            calendar,
            ManualClock(vn("2026-03-25 10:00")),  # type: ignore[arg-type]
            sink,
            None,
            None,
        )
        await worker._load([0])
        await sink.close()
        # the week passes at its first commit (no backlog to read first here)
        return worker._drain(0, worker.partitions[0], 0.0).drained.alerts

    alerts = asyncio.run(run())
    # it passed through at risk too while no worker ran: each is sent, at its instant
    assert [(a.dossier_id, a.transition) for a in alerts] == [
        ("D1", "at_risk"),
        ("D1", "overdue"),
    ]


class Acks:
    def __init__(self) -> None:
        self.acked: list[Any] = []

    async def ack(self, event: Any) -> None:
        self.acked.append(event)


def message(offset: int, lines: list[bytes], partition: int = 0) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(
        message=SimpleNamespace(topic="t.procedure-events", partition=partition, offset=offset),
        value=b"\n".join(lines),
        headers={},
    )


@pytest.mark.integration
def test_an_event_id_reused_for_another_dossier_is_refused_everywhere(database_url: str) -> None:
    """First wins: the second is a dead letter with the reason, counted
    nowhere, stored nowhere, and a recomputation agrees with the live KPIs."""
    import json

    import psycopg

    from ioc.clock import ManualClock
    from ioc.kpis import F
    from ioc.settings import Settings
    from streams import recompute as recompute_module
    from streams.sinks.event_ids import EventIds
    from streams.sinks.postgres import PostgresSink
    from streams.sinks.schema import migrate
    from tests.streams.helpers import RECEIPT, vn, world

    migrate(database_url)
    registry, calendar = world()

    def receipt(dossier: str, event_id: str, minute: int) -> bytes:
        return json.dumps(
            {
                **RECEIPT,
                "schema": 1,
                "type": "received",
                "event_id": event_id,
                "dossier_id": dossier,
                "ts": f"2026-03-16T09:{minute:02d}:00+07:00",
            }
        ).encode()

    dead: list[Any] = []

    async def to_dead(err: Any, event: Any) -> None:
        dead.append(err)

    async def run() -> tuple[int, dict[str, Any]]:
        sink, ids = PostgresSink(database_url), EventIds(database_url)
        await sink.connect()
        await ids.connect()
        updates: list[str] = []

        async def publish(message: Any) -> None:
            updates.append(message)

        worker = worker_app.ProcedureWorker(
            Settings(database_url=database_url),
            registry,
            calendar,
            ManualClock(vn("2026-03-16 10:00")),  # type: ignore[arg-type]
            sink,
            publish,
            publish,
            ids,
        )
        await worker._load([0])
        stream = Acks()
        # every dossier here belongs on partition 0 of 4 (I, B, C)
        first = message(0, [receipt("I", "E1", 0), receipt("B", "E2", 1)])
        # E1 again, for another dossier, and the same event E2 sent twice
        second = message(1, [receipt("C", "E1", 2), receipt("B", "E2", 1)])
        await worker.handle(stream, first, to_dead)  # type: ignore[arg-type]
        await worker.handle(stream, second, to_dead)  # type: ignore[arg-type]
        await worker.flush()
        assert stream.acked == [first, second]
        live = worker.partitions[0].processor.all_counters()["province"]
        await sink.close()
        await ids.close()
        return worker.dead_letters, live

    dead_count, live = asyncio.run(run())
    assert dead_count == 1
    [err] = dead
    assert err.reason.startswith("event_id 'E1' already names another event (type 'received' of")
    assert b'"dossier_id": "C"' in err.raw
    assert live["flows"]["today"][F["received"]] == 2
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT dossier_id FROM procedure_events ORDER BY 1").fetchall()
    assert stored == [("B",), ("I",)]

    settings = Settings(database_url=database_url)
    asyncio.run(recompute_module.recompute(settings, registry, calendar, force=True))
    with psycopg.connect(database_url) as conn:
        [(counters,)] = conn.execute(
            "SELECT counters FROM kpi_latest WHERE scope = 'province'"
        ).fetchall()
    assert counters["flows"]["today"][F["received"]] == 2


def test_an_event_on_another_dossiers_partition_is_refused_there() -> None:
    """An event for a dossier the partition does not hold, sent to another
    partition than ``partition_for(dossier_id)`` (a producer not keying by
    dossier id), is a dead letter with the reason and its line; the rest of
    the message is applied; a dossier the partition holds is not checked."""
    import json

    from ioc.clock import ManualClock
    from ioc.settings import Settings
    from ioc.testing import procedure_event
    from streams.kafka import partition_for
    from streams.processor import PartitionProcessor
    from streams.worker import Partition
    from tests.streams.helpers import event, vn, world

    registry, calendar = world()
    worker = worker_app.ProcedureWorker(
        Settings(procedure_partitions=4),
        registry,
        calendar,
        ManualClock(vn("2026-03-16 10:00")),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,
        None,
    )
    proc = PartitionProcessor(0, calendar, registry, worker.scopes, vn("2026-03-16 08:00"))
    assert partition_for("A", 4) == 2 and partition_for("B", 4) == 0
    # "A" is held here already (applied before partitions were checked)
    proc.apply([event("received", "A", "2026-03-16 08:30")], vn("2026-03-16 09:00"))
    worker.partitions[0] = Partition(proc, None)
    dead: list[Any] = []

    async def to_dead(err: Any, _event: Any) -> None:
        dead.append(err)

    def line(kind: str, dossier: str, minute: int) -> bytes:
        ts = f"2026-03-16T09:{minute:02d}:00+07:00"
        return json.dumps(procedure_event(kind, dossier, ts, f"{dossier}-{minute}")).encode()

    wrong = line("received", "D", 1)  # partition 1
    msg = message(7, [line("received", "B", 0), wrong, line("accepted", "A", 2)])
    stream = Acks()
    asyncio.run(worker.handle(stream, msg, to_dead))  # type: ignore[arg-type]
    [err] = dead
    assert err.reason == (
        "dossier 'D' is on the wrong partition: it belongs to partition 1 of 4 "
        "(murmur2 of dossier_id), came on 0"
    )
    assert err.raw == wrong and err.index == 1
    assert worker.partitions[0].acks == [(stream, msg)] and worker.dead_letters == 1
    assert set(proc.store.rows) == {"A", "B"}
    assert proc.stats()["events_applied"] == 3  # A's receipt, then B's and A's step


@pytest.mark.integration
def test_units_counters_go_to_the_alerts_partition_of_their_unit(database_url: str) -> None:
    """All the units' counters with the first commit (a stage adds up every
    partition's share), then those that changed; other scopes never."""
    import json

    from alerts.unit_messages import unit_counters_of
    from ioc import wire
    from ioc.clock import ManualClock
    from ioc.settings import Settings
    from streams.kafka import partition_for
    from streams.sinks.event_ids import EventIds
    from streams.sinks.postgres import PostgresSink
    from streams.sinks.schema import migrate
    from tests.streams.helpers import RECEIPT, vn, world

    migrate(database_url)
    registry, calendar = world()

    def receipt(dossier: str, event_id: str) -> bytes:
        return json.dumps(
            {
                **RECEIPT,
                "schema": 1,
                "type": "received",
                "event_id": event_id,
                "dossier_id": dossier,
                "ts": "2026-03-16T09:00:00+07:00",
            }
        ).encode()

    async def no_dead(err: Any, event: Any) -> None:
        raise AssertionError(err)

    async def run() -> tuple[list[dict[int, set[str]]], set[str]]:
        sink, ids = PostgresSink(database_url), EventIds(database_url)
        await sink.connect()
        await ids.connect()
        sent: list[tuple[bytes, int]] = []

        async def publish_updates(message: bytes) -> None:
            pass

        async def publish_alerts(message: bytes, part: int) -> None:
            sent.append((message, part))

        worker = worker_app.ProcedureWorker(
            # no rate limit on KPI updates: the second commit sends what changed
            Settings(database_url=database_url, procedure_partitions=4, kpi_updates_per_second=1e6),
            registry,
            calendar,
            ManualClock(vn("2026-03-16 10:00")),  # type: ignore[arg-type]
            sink,
            publish_updates,
            publish_alerts,
            ids,
        )
        await worker._load([0])
        rounds: list[dict[int, set[str]]] = []
        for offset, dossier in enumerate(("I", "B")):  # both on partition 0 of 4
            sent.clear()
            await worker.handle(Acks(), message(offset, [receipt(dossier, f"E{offset}")]), no_dead)  # type: ignore[arg-type]
            await worker.flush()
            got: dict[int, set[str]] = {}
            for raw, part in sent:
                body = wire.message(raw, "sla", "unit")
                if body["type"] == "unit":
                    got.setdefault(part, set()).update(unit_counters_of(body).scopes)
            rounds.append(got)
        every = set(worker.partitions[0].processor.all_counters())
        await sink.close()
        await ids.close()
        return rounds, every

    (first, second), every = asyncio.run(run())
    units = {s for s in every if s.partition(":")[0] in ("province", "commune", "agency", "centre")}
    assert set().union(*first.values()) == units and units != every
    changed = set().union(*second.values())
    assert "province" in changed and changed <= units
    for got in (first, second):
        assert all(partition_for(s, 4) == part for part, scopes in got.items() for s in scopes)


class StalledBroker:
    """A producer whose sends are never confirmed while ``away``: a produce
    request lost on a connection cut without an error (the producer would
    wait for its answer for its whole request timeout)."""

    def __init__(self) -> None:
        self.away = True
        self.stalled = 0  # sends left waiting
        self.alerts: list[tuple[bytes, int]] = []
        self.updates: list[bytes] = []

    async def _confirm(self) -> None:
        if self.away:
            self.stalled += 1
            await asyncio.Future()  # never done

    async def publish_alerts(self, message: bytes, part: int) -> None:
        await self._confirm()
        self.alerts.append((message, part))

    async def publish_updates(self, message: bytes) -> None:
        await self._confirm()
        self.updates.append(message)


@pytest.mark.integration
def test_a_send_never_confirmed_holds_no_later_commit(database_url: str) -> None:
    """The broker never confirms what the worker sends after a commit: the
    commit gives up waiting, later commits go on (events committed and
    acknowledged, SLA transitions computed and stored), and once the broker
    answers again, what was not confirmed goes: the transitions (then marked
    sent), every unit's counters, the KPI updates of the scopes that changed."""
    import json

    import psycopg

    from alerts.messages import sla_of
    from alerts.unit_messages import unit_counters_of
    from ioc import wire
    from ioc.clock import ManualClock
    from ioc.settings import Settings
    from ioc.testing import procedure_event
    from streams.sinks.postgres import PostgresSink
    from streams.sinks.schema import migrate
    from tests.streams.helpers import vn, world

    migrate(database_url)
    registry, calendar = world()

    def receipt(dossier: str, ts: str) -> bytes:
        # a quarter of a working hour: at risk after 12 working minutes
        body = procedure_event("received", dossier, ts, allotted_working_hours=0.25)
        del body["allotted_working_days"]
        return json.dumps(body).encode()

    async def no_dead(err: Any, event: Any) -> None:
        raise AssertionError(err)

    def transitions() -> list[tuple[str, str, bool]]:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT dossier_id, transition, published FROM sla_transitions ORDER BY at"
            ).fetchall()
        return [(d, t, p) for d, t, p in rows]

    broker = StalledBroker()
    clock = ManualClock(vn("2026-03-16 10:00"))

    async def run() -> None:
        sink = PostgresSink(database_url)
        await sink.connect()
        worker = worker_app.ProcedureWorker(
            # no rate limit on KPI updates: each commit publishes what changed
            Settings(database_url=database_url, procedure_partitions=4, kpi_updates_per_second=1e6),
            registry,
            calendar,
            clock,  # type: ignore[arg-type]
            sink,
            broker.publish_updates,
            broker.publish_alerts,
        )
        worker.send_timeout = 0.2
        await worker._load([0])
        stream = Acks()
        # "I" and "B" are on partition 0 of 4
        first = message(0, [receipt("I", "2026-03-16T10:00:00+07:00")])
        await worker.handle(stream, first, no_dead)  # type: ignore[arg-type]
        # bounded here so that a hang fails the test rather than blocks it
        await asyncio.wait_for(worker.flush(), 5)
        assert stream.acked == [first] and broker.stalled == 1  # one wait, not one per send
        # an hour later: "I" is overdue, and another dossier comes
        clock.advance(3600)
        second = message(1, [receipt("B", "2026-03-16T11:00:00+07:00")])
        await worker.handle(stream, second, no_dead)  # type: ignore[arg-type]
        await asyncio.wait_for(worker.flush(), 5)
        assert stream.acked == [first, second] and worker.committed_events == 2
        assert transitions() == [("I", "at_risk", False), ("I", "overdue", False)]
        assert broker.alerts == broker.updates == []
        # the broker answers again: the next commit sends what waits
        broker.away = False
        await asyncio.wait_for(worker.flush(), 5)
        assert transitions() == [("I", "at_risk", True), ("I", "overdue", True)]
        assert worker.partitions[0].unsent == []
        every = worker.partitions[0].processor.all_counters()
        await sink.close()
        sla: list[tuple[str, str]] = []
        units: set[str] = set()
        for raw, _ in broker.alerts:
            body = wire.message(raw, "sla", "unit")
            if body["type"] == "sla":
                sla += [(t.dossier_id, t.transition) for t in sla_of(body)]
            else:
                units.update(unit_counters_of(body).scopes)
        assert sla == [("I", "at_risk"), ("I", "overdue")]
        kinds = ("province", "commune", "agency", "centre")
        assert units == {s for s in every if s.partition(":")[0] in kinds}
        published = {scope for raw in broker.updates for scope in json.loads(raw)["scopes"]}
        assert published == set(every)

    asyncio.run(run())


def _wall_clock_worker(at: str) -> tuple[worker_app.ProcedureWorker, worker_app.Partition]:
    """A wall-clock worker holding partition 0 of 4, with no database, and
    that partition's slot."""
    from ioc.clock import ManualClock
    from ioc.settings import Settings
    from streams.processor import PartitionProcessor
    from tests.streams.helpers import vn, world

    registry, calendar = world()
    worker = worker_app.ProcedureWorker(
        Settings(procedure_partitions=4),
        registry,
        calendar,
        ManualClock(vn(at)),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,
        None,
    )
    proc = PartitionProcessor(0, calendar, registry, worker.scopes, vn("2026-03-16 08:00"))
    worker.partitions[0] = slot = worker_app.Partition(proc, None)
    return worker, slot


def _receipt(dossier: str, minute: int) -> bytes:
    import json

    from ioc.testing import procedure_event

    ts = f"2026-03-16T09:{minute:02d}:00+07:00"
    return json.dumps(procedure_event("received", dossier, ts, f"{dossier}-{minute}")).encode()


def test_a_watermark_last_on_a_partition_counts_as_read_on_the_wall_clock() -> None:
    """A replay's watermark (``ioc replay --until``) may be the last message of
    a partition: read, nothing waits any more, so the partition is judged at
    the clock's time again."""
    from types import SimpleNamespace

    from ioc.topics import WATERMARK_HEADER
    from streams.catchup import CatchUp
    from tests.streams.helpers import vn

    worker, slot = _wall_clock_worker("2026-03-20 10:00")
    slot.catchup = CatchUp(lambda: (None, 2))  # the receipt, then the watermark
    stream = Acks()

    async def no_dead(err: Any, event: Any) -> None:
        raise AssertionError(err)

    receipt = message(0, [_receipt("B", 0)])  # "B" is on partition 0 of 4
    asyncio.run(worker.handle(stream, receipt, no_dead))  # type: ignore[arg-type]
    assert slot.catchup.judge_at(vn("2026-03-20 10:00")) == vn("2026-03-16 09:00")
    mark = SimpleNamespace(
        message=SimpleNamespace(topic="t.procedure-events", partition=0, offset=1),
        value=b"",
        headers={WATERMARK_HEADER: repr(vn("2026-03-16 10:00")).encode()},
    )
    asyncio.run(worker.handle(stream, mark, no_dead))  # type: ignore[arg-type]
    assert [event for _, event in slot.acks] == [receipt, mark]
    assert slot.catchup.judge_at(vn("2026-03-20 10:00")) == vn("2026-03-20 10:00")


def test_a_merge_held_up_is_no_wait_for_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the worker is merging (here held up dead-lettering; the same for
    a database that is away), a partition catching up is not waiting for
    the broker: a commit meanwhile still judges it at its newest event."""
    from types import SimpleNamespace

    from streams.catchup import IDLE_WAIT, CatchUp
    from tests.streams.helpers import vn

    ticks = [1000.0]
    monkeypatch.setattr(
        worker_app, "time", SimpleNamespace(monotonic=lambda: ticks[0], time=lambda: ticks[0])
    )
    worker, slot = _wall_clock_worker("2026-03-20 10:00")
    slot.catchup = CatchUp(lambda: (None, 100), worker.waiting_clock)  # a backlog
    now, newest = vn("2026-03-20 10:00"), vn("2026-03-16 09:00")
    judged: list[float] = []

    async def slow_dead(err: Any, event: Any) -> None:
        ticks[0] += 10 * IDLE_WAIT  # held up this long
        judged.append(slot.catchup.judge_at(now))  # a commit meanwhile

    stream = Acks()
    asyncio.run(worker.handle(stream, message(0, [_receipt("B", 0)]), slow_dead))  # type: ignore[arg-type]
    asyncio.run(worker.handle(stream, message(1, [b"not an event"]), slow_dead))  # type: ignore[arg-type]
    assert judged == [newest] and worker.dead_letters == 1
    assert slot.catchup.judge_at(now) == newest
    ticks[0] += IDLE_WAIT  # then no message comes: nothing more is being read
    assert slot.catchup.judge_at(now) == now


@pytest.mark.integration
def test_a_commit_publishes_every_partitions_kpi_updates_before_the_units_counters(
    database_url: str,
) -> None:
    """The units' counters wait for the broker's confirmation; KPI updates
    only for the producer's queue. So every partition's updates go first,
    and a slow confirmation holds no partition's screens."""
    import json

    from ioc import wire
    from ioc.clock import ManualClock
    from ioc.settings import Settings
    from streams.kafka import partition_for
    from streams.sinks.postgres import PostgresSink
    from streams.sinks.schema import migrate
    from tests.streams.helpers import RECEIPT, vn, world

    migrate(database_url)
    registry, calendar = world()
    # a dossier of partition 0 and one of partition 1 (of 4)
    dossiers = {partition_for(f"D{n}", 4): f"D{n}" for n in range(50)}
    sent: list[str] = []

    async def publish_updates(message: bytes) -> None:
        sent.append("kpi")

    async def publish_alerts(message: bytes, part: int) -> None:
        await asyncio.sleep(0.01)  # a confirmation takes a round trip
        sent.append(wire.message(message, "sla", "unit")["type"])

    async def no_dead(err: Any, event: Any) -> None:
        raise AssertionError(err)

    async def run() -> None:
        sink = PostgresSink(database_url)
        await sink.connect()
        worker = worker_app.ProcedureWorker(
            Settings(database_url=database_url, procedure_partitions=4, kpi_updates_per_second=1e6),
            registry,
            calendar,
            ManualClock(vn("2026-03-16 10:00")),  # type: ignore[arg-type]
            sink,
            publish_updates,
            publish_alerts,
        )
        await worker._load([0, 1])
        for part in (0, 1):
            body = {
                **RECEIPT,
                "schema": 1,
                "type": "received",
                "event_id": f"E{part}",
                "dossier_id": dossiers[part],
                "ts": "2026-03-16T09:00:00+07:00",
            }
            event = message(0, [json.dumps(body).encode()], partition=part)
            await worker.handle(Acks(), event, no_dead)  # type: ignore[arg-type]
        await worker.flush()
        await sink.close()

    asyncio.run(run())
    assert sent.count("kpi") >= 2 and "unit" in sent
    assert sent == sorted(sent, key=lambda kind: kind != "kpi")  # every "kpi" first
