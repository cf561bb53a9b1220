"""``ioc alerts`` on the real broker and PostgreSQL: unit rules on the
units' KPI shares the workers send (``alerts.unit_messages``), and the
daily digest made once by the owner of partition 0.

The stages run on event time, so what they decide depends on the messages
only; the unit alert's expectations are computed by a pure ``UnitKpis``
and ``AlertEngine`` on the same messages."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from pathlib import Path

import orjson
import pytest

from alerts.engine import AlertEngine
from alerts.model import Outcome, record
from alerts.routing import load_routing
from alerts.rules import load_rules
from alerts.unit_kpis import UnitKpis
from alerts.unit_messages import UnitCounters, encode_unit_counters
from ioc.calendar import load_calendar
from ioc.clock import parse_instant
from ioc.registry import load_registry
from ioc.settings import Settings
from streams.kafka import partition_for
from tests.alerts.test_unit_kpis import counters
from tests.processes import Process, ioc_env, wait_until
from tests.test_alert_stage import PARTS, no_errors, query, send, sla, stage, start

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UNIT = "commune:00166"
MONDAY = parse_instant("2026-03-16T09:00:00+07:00")


def send_shares(bootstrap: str, topic: str, shares: list[UnitCounters], times: int = 1) -> None:
    """Each share in a message of its own, ``times`` over, on its unit's partition."""
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for _ in range(times):
                for s in shares:
                    body = {k: orjson.dumps(v).decode() for k, v in s.scopes.items()}
                    message = encode_unit_counters(s.part, s.at, body)
                    await producer.send_and_wait(
                        topic, message, partition=partition_for(UNIT, PARTS)
                    )
        finally:
            await producer.stop()

    asyncio.run(run())


def expected(shares: list[UnitCounters]) -> Outcome:
    """What a pure engine decides on the shares, in order, on event time
    (the signals unclocked, as the stage feeds them)."""
    s = Settings()
    rules = dataclasses.replace(load_rules(s.alert_rules), digest=None)
    routing = load_routing(s.alert_routing, load_registry(s.province_file))
    engine = AlertEngine(rules, routing, load_calendar(s.calendar_file), 0.0)
    units = UnitKpis(rules)
    # on event time a unit's signals do not move the engine's time (as the stage)
    signals = [sig for share in shares for sig in units.apply(share)]
    return engine.feed([dataclasses.replace(sig, clocked=False) for sig in signals])


def test_a_units_backlog_opens_one_alert_across_two_stages_redelivery_and_a_restart_then_resolves(
    tmp_path: Path, kafka_bootstrap: str, database_url: str
) -> None:
    env = ioc_env(tmp_path, kafka_bootstrap, database_url, "mqtt://127.0.0.1:1", IOC_CLOCK="event")
    topic = env["IOC_TOPIC_PREFIX"] + "alerts"
    start(env, tmp_path)
    part = partition_for(UNIT, PARTS)
    # two procedure partitions' shares: 6 + 7 overdue dossiers, over the sample's 10
    above = [
        UnitCounters(0, MONDAY, {UNIT: counters(6)}),
        UnitCounters(1, MONDAY + 60, {UNIT: counters(7)}),
    ]
    # partition 1's share falls to 2: 8 in all, back under the threshold
    under = [UnitCounters(1, MONDAY + 3600, {UNIT: counters(2)})]
    want = expected([*above, *under])
    procs: list[Process] = []
    try:
        a = stage("alerts-a", env, tmp_path)
        procs.append(a)
        wait_until("stage a", lambda: a.output().count("ready at offset") >= PARTS, 90)
        b = stage("alerts-b", env, tmp_path)
        procs.append(b)
        wait_until("stage b", lambda: "ready at offset" in b.output(), 90)
        owner, other = (b, a) if f"alerts partition {part} ready" in b.output() else (a, b)
        send_shares(kafka_bootstrap, topic, above, times=5)
        wait_until(
            "the alert",
            lambda: query(database_url, "SELECT 1 FROM alerts WHERE subject = %s", UNIT),
            60,
        )
        owner.proc.send_signal(signal.SIGKILL)
        owner.proc.wait(10)
        send_shares(kafka_bootstrap, topic, above, times=3)
        again = stage(f"{owner.name}-again", env, tmp_path)
        procs.append(again)
        wait_until("the restarted stage", lambda: "ready at offset" in again.output(), 90)
        send_shares(kafka_bootstrap, topic, [*above, *under], times=2)
        wait_until(
            "the auto-resolution",
            lambda: query(
                database_url, "SELECT 1 FROM alerts WHERE subject = %s AND state = 'resolved'", UNIT
            ),
            60,
        )
        assert other.alive() and again.alive()
    finally:
        for proc in procs:
            proc.stop()
    rows = query(
        database_url,
        "SELECT id, rule, state, resolved_how, peak FROM alerts WHERE subject = %s",
        UNIT,
    )
    assert [r[1:] for r in rows] == [("backlog-commune", "resolved", "auto", 13.0)]
    history = query(
        database_url,
        "SELECT change FROM alert_history WHERE alert_id = %s ORDER BY seq",
        rows[0][0],
    )
    assert [h[0] for h in history] == [record(c)["type"] for c in want.changes]
    assert [h[0] for h in history] == ["opened", "escalated", "resolved"]
    keys = {r[0] for r in query(database_url, "SELECT key FROM alert_deliveries")}
    assert keys == {d.key for d in want.deliveries} and keys
    for proc in procs:
        no_errors(proc)


def digest_dates(url: str) -> list[tuple[str, int]]:
    return [
        (r[0], int(r[1]))
        for r in query(
            url,
            "SELECT split_part(split_part(key, '/', 1), ':', 2), count(*) FROM alert_deliveries "
            "WHERE key LIKE 'digest:%%' GROUP BY 1 ORDER BY 1",
        )
    ]


def test_the_digest_is_made_once_at_its_hour_on_working_days_across_a_restart(
    tmp_path: Path, kafka_bootstrap: str, database_url: str
) -> None:
    """On event time: the alerts' own instants move the stage's clock past
    07:30 on Monday, then Friday, then over the weekend."""
    env = ioc_env(tmp_path, kafka_bootstrap, database_url, "mqtt://127.0.0.1:1", IOC_CLOCK="event")
    topic = env["IOC_TOPIC_PREFIX"] + "alerts"
    start(env, tmp_path)

    def at(text: str) -> float:
        return parse_instant(f"{text}:00+07:00")

    def planned() -> float | None:
        rows = query(database_url, "SELECT state->'digest_at' FROM alert_partitions WHERE part = 0")
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    early = sla("H01.00166-260313-000001", "overdue", at("2026-03-16T07:00"))
    procs: list[Process] = []
    try:
        first = stage("alerts", env, tmp_path)
        procs.append(first)
        wait_until("the stage", lambda: first.output().count("ready at offset") >= PARTS, 90)
        send(kafka_bootstrap, topic, [early])
        wait_until("Monday's digest planned", lambda: planned() == at("2026-03-16T07:30"), 60)
        monday = sla("H01.00166-260316-000002", "overdue", at("2026-03-16T08:00"))
        send(kafka_bootstrap, topic, [monday])
        wait_until("Monday's digest", lambda: digest_dates(database_url), 60)
        made = digest_dates(database_url)
        assert [d for d, _ in made] == ["2026-03-16"] and made[0][1] > 0
        # a stage killed and started again, the same transitions sent again: no second digest
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        second = stage("alerts-again", env, tmp_path)
        procs.append(second)
        wait_until(
            "the restarted stage", lambda: second.output().count("ready at offset") >= PARTS, 90
        )
        send(kafka_bootstrap, topic, [early, monday], times=2)
        friday = sla("H01.00166-260320-000003", "overdue", at("2026-03-20T08:00"))
        send(kafka_bootstrap, topic, [friday])
        wait_until("Friday's digest", lambda: len(digest_dates(database_url)) == 2, 60)
        # Saturday and Sunday are days off
        weekend = [
            sla("H01.00166-260321-000004", "overdue", at("2026-03-21T09:00")),
            sla("H01.00166-260322-000005", "overdue", at("2026-03-22T09:00")),
        ]
        send(kafka_bootstrap, topic, weekend)
        wait_until("the weekend's time", lambda: planned() == at("2026-03-23T07:30"), 60)
        wait_until(
            "the clock on Sunday",
            lambda: (
                query(database_url, "SELECT max(clock) FROM alert_partitions")[0][0]
                >= at("2026-03-22T09:00")
            ),
            60,
        )
        time.sleep(2.5)  # two more ticks of the digest's owner on Sunday's time
    finally:
        for proc in procs:
            proc.stop()
    made = digest_dates(database_url)
    assert [d for d, _ in made] == ["2026-03-16", "2026-03-20"]
    assert all(n > 0 for _, n in made)
    for proc in procs:
        no_errors(proc)
