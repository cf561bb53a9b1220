"""``ioc alerts`` on the real broker and PostgreSQL: SLA transitions sent on
the alerts topic as the worker sends them (``alerts.messages``, on the
partition of their dossier), alerts and their outbox in the database.

The stages run on event time, so what they decide depends on the messages
only; every expectation is computed by a pure ``AlertEngine`` on the same
transitions."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from alerts.engine import AlertEngine
from alerts.messages import SlaTransition, sla_messages
from alerts.model import Outcome, record
from alerts.routing import load_routing
from alerts.rules import load_rules
from alerts.signals import sla_signals
from ioc.calendar import load_calendar
from ioc.clock import parse_instant
from ioc.registry import load_registry
from ioc.settings import Settings
from ioc.topics import Topics
from streams.kafka import ensure_topics, partition_for, topic_layout
from tests.processes import Process, ioc_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTS = 4
T0 = parse_instant("2026-03-16T09:00:00+07:00")  # a Monday
LATER = parse_instant("2026-03-19T10:00:00+07:00")  # 3 working days later
READ, OPERATOR = "stage-read-token-0123", "stage-operator-token-0"


def sla(dossier: str, transition: str, at: float, due: float | None = None) -> SlaTransition:
    """A transition as the worker stores and sends it."""
    return SlaTransition(
        at=at,
        dossier_id=dossier,
        transition=transition,
        due=at if due is None else due,
        consumed_hours=24.0,
        allotted_hours=24.0,
        commune="00166",
        agency="ubnd-00166",
        centre="hcc-00166",
        procedure="1.000005",
        field="ho-tich",
    )


def same_partition(dossier: str, prefix: str) -> str:
    """Another dossier on ``dossier``'s partition."""
    part = partition_for(dossier, PARTS)
    return next(f"{prefix}{i}" for i in range(1000) if partition_for(f"{prefix}{i}", PARTS) == part)


def send(bootstrap: str, topic: str, items: list[SlaTransition], times: int = 1) -> None:
    """Each item in a message of its own, ``times`` over, on its dossier's partition."""
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for _ in range(times):
                for item in items:
                    (message,) = sla_messages([item])
                    part = partition_for(item.dossier_id, PARTS)
                    await producer.send_and_wait(topic, message, partition=part)
        finally:
            await producer.stop()

    asyncio.run(run())


def expected(items: list[SlaTransition], until: float | None = None) -> Outcome:
    """What a pure engine decides on the transitions, in order (no digests,
    as the stage), on event time, then ticked ``until``."""
    s = Settings()
    registry = load_registry(s.province_file)
    rules = dataclasses.replace(load_rules(s.alert_rules), digest=None)
    engine = AlertEngine(
        rules, load_routing(s.alert_routing, registry), load_calendar(s.calendar_file), 0.0
    )
    out = engine.feed([sig for item in items for sig in sla_signals(item.item())])
    if until is not None:
        out.extend(engine.tick(until))
    return out


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def stored_deliveries(url: str) -> set[str]:
    """The alerts' deliveries. The daily digest's (made by the owner of
    partition 0 once event time passes 07:30 of a working day, tested in
    tests/test_alert_units.py) are left out: whether one is made before a
    test stops depends on when its tick comes."""
    return {r[0] for r in query(url, "SELECT key FROM alert_deliveries")} - digests(url)


def digests(url: str) -> set[str]:
    return {r[0] for r in query(url, "SELECT key FROM alert_deliveries WHERE key LIKE 'digest:%%'")}


def start(env: dict[str, str], tmp: Path) -> None:
    topics = Topics(env["IOC_TOPIC_PREFIX"])
    asyncio.run(ensure_topics(env["IOC_KAFKA_URL"][8:], topic_layout(topics, PARTS, 2)))


def stage(name: str, env: dict[str, str], tmp: Path) -> Process:
    return Process(name, ["alerts"], env, tmp / "logs")


def no_errors(proc: Process) -> None:
    """Nothing the stage logged as an error. The Kafka client's own reports of
    a connection the broker closed (it reconnects) are its business."""
    text = proc.output()
    assert "ERROR alerts." not in text, text[-3000:]
    for trace in text.split("Traceback (most recent call last):")[1:]:
        frames = [line for line in trace.splitlines() if line.strip().startswith("File ")]
        assert all("aiokafka" in f or "asyncio" in f for f in frames), trace[:3000]


def test_one_alert_and_one_delivery_each_across_duplicates_redelivery_and_a_killed_stage(
    tmp_path: Path, kafka_bootstrap: str, database_url: str
) -> None:
    env = ioc_env(tmp_path, kafka_bootstrap, database_url, "mqtt://127.0.0.1:1", IOC_CLOCK="event")
    topic = env["IOC_TOPIC_PREFIX"] + "alerts"
    start(env, tmp_path)
    d1 = "H01.00166-260316-000001"
    part = partition_for(d1, PARTS)
    # a dozen overdue dossiers of the partition, each a minute apart, then one
    # three working days later that moves the partition's time past their next step
    dossiers = [d1] + [same_partition(d1, f"H01.00166-260316-{i:02d}") for i in range(11)]
    overdue = [sla(d, "overdue", T0 + 60 * i) for i, d in enumerate(dossiers)]
    later = sla(same_partition(d1, "H01.00166-260319-"), "overdue", LATER)
    want = expected([*overdue, later])
    procs: list[Process] = []
    try:
        a = stage("alerts-a", env, tmp_path)
        procs.append(a)
        wait_until("stage a", lambda: a.output().count("ready at offset") >= PARTS, 90)
        b = stage("alerts-b", env, tmp_path)
        procs.append(b)
        wait_until("stage b", lambda: "ready at offset" in b.output(), 90)
        owner, other = (b, a) if f"alerts partition {part} ready" in b.output() else (a, b)
        send(kafka_bootstrap, topic, overdue, times=10)
        wait_until(
            "the alert",
            lambda: query(database_url, "SELECT 1 FROM alerts WHERE subject = %s", f"dossier:{d1}"),
            60,
        )
        # the owner dies with a batch perhaps half done; the same transition keeps coming
        owner.proc.send_signal(signal.SIGKILL)
        owner.proc.wait(10)
        send(kafka_bootstrap, topic, overdue, times=5)
        again = stage(f"{owner.name}-again", env, tmp_path)
        procs.append(again)
        wait_until("the restarted stage", lambda: "ready at offset" in again.output(), 90)
        send(kafka_bootstrap, topic, [*overdue, later], times=3)
        keys = {d.key for d in want.deliveries}
        wait_until("every delivery", lambda: stored_deliveries(database_url) >= keys, 120)
        assert other.alive() and again.alive()
    finally:
        for proc in procs:
            proc.stop()
    assert stored_deliveries(database_url) == keys
    rows = query(database_url, "SELECT id, state FROM alerts WHERE subject = %s", f"dossier:{d1}")
    assert len(rows) == 1 and rows[0][1] == "open", rows
    per_target = query(
        database_url,
        "SELECT alert_id, step, recipient, channel, count(*) FROM alert_deliveries "
        "GROUP BY 1, 2, 3, 4 HAVING count(*) > 1",
    )
    assert per_target == []
    history = query(
        database_url,
        "SELECT change FROM alert_history WHERE alert_id = %s ORDER BY seq",
        rows[0][0],
    )
    want_history = [record(c)["type"] for c in want.changes if c.alert_id == rows[0][0]]  # type: ignore[union-attr]
    assert [h[0] for h in history] == want_history
    for proc in procs:
        no_errors(proc)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_operator_acknowledges_through_the_api_and_a_finished_dossier_resolves(
    tmp_path: Path, kafka_bootstrap: str, database_url: str
) -> None:
    env = ioc_env(
        tmp_path,
        kafka_bootstrap,
        database_url,
        "mqtt://127.0.0.1:1",
        IOC_CLOCK="event",
        IOC_READ_TOKEN=READ,
        IOC_OPERATOR_TOKEN=OPERATOR,
    )
    topic = env["IOC_TOPIC_PREFIX"] + "alerts"
    start(env, tmp_path)
    d1 = "H01.00166-260316-000002"
    d2 = same_partition(d1, "H01.00166-260319-")
    base = f"http://127.0.0.1:{env['IOC_API_PORT']}"
    alerts = stage("alerts", env, tmp_path)
    api = Process("api", ["api"], env, tmp_path / "logs")
    try:
        wait_until("the stage", lambda: alerts.output().count("ready at offset") >= PARTS, 90)
        wait_until("the API", lambda: httpx.get(f"{base}/healthz", timeout=2).is_success, 60)
        send(kafka_bootstrap, topic, [sla(d1, "overdue", T0)])

        def opened() -> str | None:
            found = httpx.get(
                f"{base}/api/v1/alerts", params={"scope": "commune:00166"}, headers=bearer(READ)
            ).json()["alerts"]
            return found[0]["id"] if found else None

        ident = wait_until("the alert in the API", opened, 60)
        url = f"{base}/api/v1/alerts/{ident}"
        body = {"who": "Nguyễn Văn An", "comment": "đang xử lý"}
        assert httpx.post(f"{url}/ack", json=body, headers=bearer(READ)).status_code == 403
        assert httpx.post(f"{url}/ack", json=body).status_code == 401
        assert (
            httpx.post(f"{url}/ack", json={"who": ""}, headers=bearer(OPERATOR)).status_code == 400
        )
        assert (
            httpx.post(f"{url}/ack", json={"who": "   "}, headers=bearer(OPERATOR)).status_code
            == 400
        )
        answer = httpx.post(f"{url}/ack", json=body, headers=bearer(OPERATOR), timeout=10)
        assert answer.status_code in (200, 202), answer.text
        wait_until(
            "the acknowledgement",
            lambda: httpx.get(url, headers=bearer(READ)).json()["state"] == "acknowledged",
            30,
        )
        # three working days later: the next step is reached, and calls nobody
        send(kafka_bootstrap, topic, [sla(d2, "overdue", LATER)])
        wait_until(
            "time to pass on the partition",
            lambda: (
                "worsened"
                in [h["change"] for h in httpx.get(url, headers=bearer(READ)).json()["history"]]
            ),
            60,
        )
        seen = httpx.get(url, headers=bearer(READ)).json()
        assert {d["step"] for d in seen["deliveries"]} == {0}, seen["deliveries"]
        # the consoles' own are done by the commit; the rest wait for ioc notify
        states = {(d["channel"], d["state"]) for d in seen["deliveries"]}
        assert states == {("websocket", "sent"), ("email", "pending")}, states
        # the dossier is finished: its alert resolves by itself
        send(kafka_bootstrap, topic, [sla(d1, "cleared", LATER + 3600, T0)])
        wait_until(
            "the auto-resolution",
            lambda: httpx.get(url, headers=bearer(READ)).json()["state"] == "resolved",
            60,
        )
        seen = httpx.get(url, headers=bearer(READ)).json()
        assert seen["resolved_how"] == "auto" and seen["acknowledged_by"] == "Nguyễn Văn An"
        assert seen["comment"] == "đang xử lý"
        assert httpx.post(f"{url}/resolve", json=body, headers=bearer(OPERATOR)).status_code == 409
        listed = httpx.get(
            f"{base}/api/v1/alerts", params={"state": "resolved"}, headers=bearer(READ)
        ).json()
        assert [a["id"] for a in listed["alerts"]] == [ident]
    finally:
        alerts.stop()
        api.stop()
    no_errors(alerts)


def test_on_the_wall_clock_escalation_steps_fire_with_no_new_message(
    tmp_path: Path, kafka_bootstrap: str, database_url: str
) -> None:
    """The clock stands three working days after the due time: the ticks
    take the alert through its first two steps by themselves."""
    from ioc.clock import to_iso

    env = ioc_env(
        tmp_path,
        kafka_bootstrap,
        database_url,
        "mqtt://127.0.0.1:1",
        IOC_CLOCK="wall",
        IOC_CLOCK_START=to_iso(LATER),
        IOC_CLOCK_SPEED=0,
    )
    start(env, tmp_path)
    item = sla("H01.00166-260316-000003", "overdue", T0)
    want = expected([item], until=LATER)
    proc = stage("alerts", env, tmp_path)
    try:
        wait_until("the stage", lambda: proc.output().count("ready at offset") >= PARTS, 90)
        send(kafka_bootstrap, env["IOC_TOPIC_PREFIX"] + "alerts", [item])
        keys = {d.key for d in want.deliveries}
        wait_until("both steps' deliveries", lambda: stored_deliveries(database_url) == keys, 30)
    finally:
        code = proc.stop()
    assert {int(k.split("/")[1]) for k in keys} == {0, 1}
    assert code == 0  # SIGTERM: the stage leaves its group and exits cleanly
    no_errors(proc)


def test_escalation_across_a_weekend_and_holidays_stops_on_ack_and_resolves_when_finished(
    tmp_path: Path, kafka_bootstrap: str, database_url: str
) -> None:
    """Event time: the partition's clock is the latest transition's instant,
    moved here by transitions of other dossiers of the partition.

    Due Tue 28 Apr 2026 16:00. Wed 29 Apr is working day 1 late; Thu 30 Apr
    (Reunification Day) and Fri 1 May (Labour Day) are holidays, 2-3 May a
    weekend; so 2 working days late (step 1: the commune chair) is Mon 4 May
    16:00, not Thu 30 Apr, and 5 working days late (step 2: the city) would
    be Thu 7 May 16:00 (Tue 5 = 3, Wed 6 = 4, Thu 7 = 5)."""
    env = ioc_env(
        tmp_path,
        kafka_bootstrap,
        database_url,
        "mqtt://127.0.0.1:1",
        IOC_CLOCK="event",
        IOC_READ_TOKEN=READ,
        IOC_OPERATOR_TOKEN=OPERATOR,
    )
    topic = env["IOC_TOPIC_PREFIX"] + "alerts"
    start(env, tmp_path)
    dossier = "H01.00166-260420-000001"
    due = parse_instant("2026-04-28T16:00:00+07:00")
    base = f"http://127.0.0.1:{env['IOC_API_PORT']}"

    def move_to(when: str) -> None:
        """The partition's time to ``when``: another dossier of the partition
        turns overdue then; its own alert shows that the stage applied it."""
        marker = same_partition(dossier, f"H01.00166-{when[2:10].replace('-', '')}-")
        send(kafka_bootstrap, topic, [sla(marker, "overdue", parse_instant(when))])
        wait_until(
            f"the partition at {when}",
            lambda: query(
                database_url, "SELECT 1 FROM alerts WHERE subject = %s", f"dossier:{marker}"
            ),
            30,
        )

    def alert() -> dict[str, Any]:
        rows = query(database_url, "SELECT id FROM alerts WHERE subject = %s", f"dossier:{dossier}")
        assert len(rows) == 1, rows
        got = httpx.get(f"{base}/api/v1/alerts/{rows[0][0]}", headers=bearer(READ), timeout=10)
        return dict(got.json())

    def steps_at() -> dict[int, str]:
        return {
            h["detail"]["step"]: h["at"] for h in alert()["history"] if h["change"] == "escalated"
        }

    stage_proc = stage("alerts", env, tmp_path)
    api = Process("api", ["api"], env, tmp_path / "logs")
    try:
        wait_until("the stage", lambda: stage_proc.output().count("ready at offset") >= PARTS, 90)
        wait_until("the API", lambda: httpx.get(f"{base}/healthz", timeout=2).is_success, 60)
        send(kafka_bootstrap, topic, [sla(dossier, "overdue", due)])
        wait_until("the alert", lambda: query(database_url, "SELECT 1 FROM alerts"), 60)
        assert steps_at() == {0: "2026-04-28T16:00:00+07:00"}

        # the weekend after two holidays: still only the first step
        for when in ("2026-04-30T16:01:00+07:00", "2026-05-02T12:00:00+07:00"):
            move_to(when)
            assert set(steps_at()) == {0}, when
        move_to("2026-05-04T15:59:00+07:00")
        assert set(steps_at()) == {0}
        move_to("2026-05-04T16:01:00+07:00")
        wait_until("step 1", lambda: 1 in steps_at(), 30)
        assert steps_at() == {
            0: "2026-04-28T16:00:00+07:00",
            1: "2026-05-04T16:00:00+07:00",
        }

        # acknowledged on Monday: Thursday's step to the city never comes
        url = f"{base}/api/v1/alerts/{alert()['id']}"
        body = {"who": "Lê Văn Cường", "comment": "đã giao phòng tư pháp"}
        answer = httpx.post(f"{url}/ack", json=body, headers=bearer(OPERATOR), timeout=10)
        assert answer.status_code in (200, 202), answer.text
        wait_until("the acknowledgement", lambda: alert()["state"] == "acknowledged", 30)
        move_to("2026-05-11T16:01:00+07:00")
        wait_until("the worsening said", lambda: "worsened" in changes(alert()), 30)
        assert set(steps_at()) == {0, 1}
        assert {d["step"] for d in alert()["deliveries"]} == {0, 1}

        # the dossier is finished on Tuesday: the alert resolves by itself
        send(
            kafka_bootstrap,
            topic,
            [sla(dossier, "cleared", parse_instant("2026-05-12T10:00:00+07:00"), due)],
        )
        wait_until("the auto-resolution", lambda: alert()["state"] == "resolved", 30)
        done = alert()
        assert done["resolved_how"] == "auto"
        assert done["resolved_at"] == "2026-05-12T10:00:00+07:00"
        assert done["acknowledged_by"] == "Lê Văn Cường"
    finally:
        api.stop()
        stage_proc.stop()
    no_errors(stage_proc)


def changes(alert: dict[str, Any]) -> list[str]:
    return [h["change"] for h in alert["history"]]


def test_a_wall_clock_stage_reads_its_backlog_before_its_clock_moves(
    tmp_path: Path, kafka_bootstrap: str, database_url: str
) -> None:
    """The stage starts three working days after a dossier fell due and was
    finished an hour later, both transitions waiting on the topic: it sees
    them in order, so the dossier's alert opens, calls its first step and
    resolves; the 2-working-day step is never called, though the clock
    stands past it."""
    from ioc.clock import to_iso

    env = ioc_env(
        tmp_path,
        kafka_bootstrap,
        database_url,
        "mqtt://127.0.0.1:1",
        IOC_CLOCK="wall",
        IOC_CLOCK_START=to_iso(LATER),
        IOC_CLOCK_SPEED=0,
    )
    start(env, tmp_path)
    dossier = "H01.00166-260316-000004"
    items = [sla(dossier, "overdue", T0), sla(dossier, "cleared", T0 + 3600, T0)]
    topic = env["IOC_TOPIC_PREFIX"] + "alerts"
    send(kafka_bootstrap, topic, items[:1])
    send(kafka_bootstrap, topic, items[1:])
    want = expected(items)
    proc = stage("alerts", env, tmp_path)
    try:
        wait_until("the stage", lambda: proc.output().count("ready at offset") >= PARTS, 90)
        wait_until(
            "the resolution",
            lambda: query(database_url, "SELECT 1 FROM alerts WHERE state = 'resolved'"),
            30,
        )
        time.sleep(2)  # ticks to the clock's time follow: they must add nothing
    finally:
        proc.stop()
    history = query(database_url, "SELECT change FROM alert_history ORDER BY alert_id, seq")
    assert [h[0] for h in history] == ["opened", "escalated", "resolved"]
    assert [record(c)["type"] for c in want.changes] == ["opened", "escalated", "resolved"]
    assert stored_deliveries(database_url) == {d.key for d in want.deliveries}
    assert {int(k.split("/")[1]) for k in stored_deliveries(database_url)} == {0}
    no_errors(proc)
