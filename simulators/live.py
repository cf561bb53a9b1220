"""``ioc simulate``: simulated procedure events and sensor readings, live.

Dossiers are planned at receipt (simulators.procedures) and each event is
sent when the injected clock reaches its time, in batches: to the HTTP
ingest (as NDJSON) or straight to Kafka. Sensor readings go over MQTT
(simulators.sensors). Sending retries until the target takes the batch;
event ids make a repeat harmless.

Each run puts a random tag in its dossier ids (``H01.00166-260316-<tag>-000001``),
and so in its event ids: a restarted simulator, planning from the same seed
again, would otherwise send other events under the ids of the first run's,
which the worker refuses as reused. The seed still decides what happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import secrets
import signal
from typing import Any

import httpx

from ioc.calendar import WorkingCalendar
from ioc.clock import WallClock, build_clock, parse_instant
from ioc.registry import Registry
from ioc.settings import Settings
from ioc.topics import Topics
from simulators.procedures import DossierPlanner, Profile, encode

log = logging.getLogger(__name__)
TICK = 0.2  # seconds of real time between sends


class ProcedureFeeder:
    """Receipts arriving at the clock's pace, each dossier's events queued."""

    def __init__(self, planner: DossierPlanner, per_office_hour: float, now: float) -> None:
        self.planner = planner
        self.rate = per_office_hour
        self.next_receipt = planner.next_arrival(now, per_office_hour)
        self.queue: list[tuple[float, int, dict[str, Any]]] = []
        self._n = 0

    def due(self, now: float) -> list[dict[str, Any]]:
        while self.next_receipt <= now:
            for ev in self.planner.plan(self.next_receipt):
                heapq.heappush(self.queue, (parse_instant(ev["ts"]), self._n, ev))
                self._n += 1
            self.next_receipt = self.planner.next_arrival(self.next_receipt, self.rate)
        out = []
        while self.queue and self.queue[0][0] <= now:
            out.append(heapq.heappop(self.queue)[2])
        return out


async def send_http(
    client: httpx.AsyncClient, url: str, token: str, events: list[dict[str, Any]]
) -> None:
    body = b"\n".join(encode(e) for e in events)
    headers = {"content-type": "application/x-ndjson"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    delay = 0.5
    while True:
        try:
            r = await client.post(url, content=body, headers=headers)
            if r.status_code in (202, 422):
                if r.status_code == 422 or r.json().get("rejected"):
                    log.warning("ingest rejected simulated events: %s", r.text[:500])
                return
            log.info("ingest answered %s; retrying", r.status_code)
        except httpx.HTTPError as exc:
            log.info("ingest not reachable (%s); retrying", exc.__class__.__name__)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def run_procedures(
    settings: Settings,
    registry: Registry,
    calendar: WorkingCalendar,
    clock: WallClock,
    target: str,
    stop: asyncio.Event,
) -> None:
    profile = Profile.load()
    rate = settings.sim_dossiers_per_hour or profile.dossiers_per_office_hour
    run = secrets.token_hex(4)
    planner = DossierPlanner(registry, calendar, profile, seed=settings.sim_seed, run=run)
    feeder = ProcedureFeeder(planner, rate, clock.now())
    topics = Topics(settings.topic_prefix)
    producer = None
    client = None
    if target == "kafka":
        from streams.kafka import Producer

        producer = Producer(settings.kafka_bootstrap, client_id="ioc-simulator")
        await producer.start()
    else:
        client = httpx.AsyncClient(timeout=30)
    url = f"{settings.base_url}/api/v1/procedure-events"
    log.info("simulating %.0f receipts per office hour -> %s (run %s)", rate, target, run)
    try:
        while not stop.is_set():
            events = feeder.due(clock.now())
            if events:
                if producer is not None:
                    await producer.send_keyed(
                        topics.procedure_events, [(e["dossier_id"], encode(e)) for e in events]
                    )
                elif client is not None:
                    await send_http(client, url, settings.ingest_token, events)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK)
    finally:
        if producer is not None:
            await producer.stop()
        if client is not None:
            await client.aclose()


async def run_simulators(
    settings: Settings,
    registry: Registry,
    calendar: WorkingCalendar,
    target: str = "http",
    sensors: bool = True,
) -> None:
    clock = build_clock("wall", settings.clock_start, settings.clock_speed, settings.clock_anchor)
    assert isinstance(clock, WallClock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    jobs = [run_procedures(settings, registry, calendar, clock, target, stop)]
    if sensors and settings.sim_sensors:
        from simulators.sensors import publish_sensors

        jobs.append(publish_sensors(settings, registry, clock, stop))
    await asyncio.gather(*jobs)
