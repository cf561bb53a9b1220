"""The ``ioc`` command: one entry point per process of the system.

This is the composition root: it builds the settings, the registry and the
calendar, and hands them to the adapters, which it imports only when their
command runs (so ``ioc --help`` needs no server and no optional extra).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence

import psycopg
from pydantic import ValidationError

from alerts.config import ConfigError
from ioc.calendar import CalendarError
from ioc.registry import RegistryError
from ioc.scorecard import ScorecardError
from ioc.settings import Settings, settings_problems

log = logging.getLogger("ioc")


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _world(settings: Settings):  # type: ignore[no-untyped-def]
    from ioc.calendar import load_calendar
    from ioc.registry import load_registry

    return load_registry(settings.province_file), load_calendar(settings.calendar_file)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from streams.sinks.schema import SchemaError, migrate

    try:
        mode = migrate(settings.database_url)
    except SchemaError as exc:
        print(f"ioc db migrate: {exc}", file=sys.stderr)
        return 2
    print(f"schema ready ({mode})")
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from faust.worker import Worker

    from ioc.topics import Topics
    from streams.app import create_app
    from streams.kafka import ensure_topics, topic_layout
    from streams.metrics import serve
    from streams.sinks.guards import (
        RecomputeUnfinished,
        TopicMismatch,
        bind_topic,
        check_no_unfinished_recompute,
    )
    from streams.sinks.schema import SchemaError, migrate

    registry, calendar = _world(settings)
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    topics = Topics(settings.topic_prefix)
    try:
        migrate(settings.database_url)
        bind_topic(settings.database_url, topics.procedure_events, settings.procedure_partitions)
        check_no_unfinished_recompute(settings.database_url)
    except (SchemaError, TopicMismatch, RecomputeUnfinished) as exc:
        print(f"ioc worker: {exc}", file=sys.stderr)
        return 2
    layout = topic_layout(topics, settings.procedure_partitions, settings.sensor_partitions)
    asyncio.run(ensure_topics(settings.kafka_bootstrap, layout))
    app, procedures = create_app(settings, registry, calendar)
    serve(procedures.metrics.registry, settings.api_host, settings.worker_metrics_port, "worker")
    worker = Worker(app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    from alerts.config import ConfigError
    from alerts.routing import load_routing
    from alerts.rules import load_rules
    from alerts.stage import run_stage
    from ioc.clock import build_clock
    from ioc.topics import Topics
    from streams.kafka import ensure_topics, topic_layout
    from streams.sinks.schema import SchemaError, migrate

    registry, calendar = _world(settings)
    try:
        rules = load_rules(settings.alert_rules)
        routing = load_routing(settings.alert_routing, registry)
        migrate(settings.database_url)
    except (ConfigError, SchemaError) as exc:
        print(f"ioc alerts: {exc}", file=sys.stderr)
        return 2
    topics = Topics(settings.topic_prefix)
    layout = topic_layout(topics, settings.procedure_partitions, settings.sensor_partitions)
    asyncio.run(ensure_topics(settings.kafka_bootstrap, layout))
    clock = build_clock(
        settings.clock, settings.clock_start, settings.clock_speed, settings.clock_anchor
    )
    asyncio.run(run_stage(settings, rules, routing, calendar, clock))
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    from ui_feed.app import run_api

    run_api(settings)
    return 0


def cmd_bridge(settings: Settings, args: argparse.Namespace) -> int:
    from streams.sources.mqtt_bridge import run_bridge

    asyncio.run(run_bridge(settings))
    return 0


def cmd_notify(settings: Settings, args: argparse.Namespace) -> int:
    from alerts.notify import run_notifier

    # an unsigned webhook can be forged by anyone who knows the receiver's URL
    if settings.env == "production" and len(settings.webhook_secret) < 16:
        print("ioc notify: IOC_WEBHOOK_SECRET must be set, 16+ characters", file=sys.stderr)
        return 2
    asyncio.run(run_notifier(settings))
    return 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from simulators.live import run_simulators
    from simulators.sensor_scenarios import check_scenario

    registry, calendar = _world(settings)
    # The simulated sensors read their scenario and seed from the settings.
    update: dict[str, object] = {}
    if args.scenario is not None:
        update["sim_scenario"] = args.scenario
    if args.seed is not None:
        update["sim_seed"] = args.seed
    settings = settings.model_copy(update=update)
    try:
        check_scenario(settings.sim_scenario)
    except ValueError as exc:
        print(f"IOC_SIM_SCENARIO: {exc}", file=sys.stderr)
        return 2
    asyncio.run(run_simulators(settings, registry, calendar, target=args.to, sensors=args.sensors))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from ioc.demo import run_demo

    return run_demo(settings)


def cmd_recompute(settings: Settings, args: argparse.Namespace) -> int:
    from ioc.clock import parse_instant
    from streams.recompute import WorkersRunning, recompute

    registry, calendar = _world(settings)
    until = parse_instant(args.until) if args.until else None
    try:
        result = asyncio.run(recompute(settings, registry, calendar, until, args.force))
    except WorkersRunning as exc:
        print(f"ioc kpis recompute: {exc}", file=sys.stderr)
        return 2
    print(result)
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from ioc.clock import parse_instant
    from simulators.replay import open_in, read_events, replay, shuffled_with_repeats

    with open_in(args.file) as source:
        events = read_events(source)
    if args.shuffle is not None:
        events = shuffled_with_repeats(events, args.shuffle, args.repeat)
    speed = None if args.speed == "max" else float(args.speed)
    until = parse_instant(args.until) if args.until else None
    sent = asyncio.run(replay(settings, events, speed, until, keep_order=args.shuffle is not None))
    print(f"replayed {len(events)} events in {sent} messages")
    return 0


def cmd_generate(settings: Settings, args: argparse.Namespace) -> int:
    from simulators.replay import generated, write_lines

    registry, calendar = _world(settings)
    n = write_lines(
        generated(registry, calendar, args.start, args.days, args.rate, args.seed), args.out
    )
    print(f"wrote {n} events", file=sys.stderr)
    return 0


def cmd_record(settings: Settings, args: argparse.Namespace) -> int:
    from simulators.replay import open_out, record

    with open_out(args.out) as out:
        n = asyncio.run(record(settings, out, args.idle))
    print(f"recorded {n} events", file=sys.stderr)
    return 0


def cmd_schema(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from ioc.events import procedure_event_schema, sensor_reading_schema

    schema = procedure_event_schema() if args.kind == "procedure-event" else sensor_reading_schema()
    print(json.dumps(schema, ensure_ascii=False, indent=2))
    return 0


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "worker": cmd_worker,
    "alerts": cmd_alerts,
    "api": cmd_api,
    "bridge": cmd_bridge,
    "notify": cmd_notify,
    "simulate": cmd_simulate,
    "schema": cmd_schema,
    "replay": cmd_replay,
    "generate": cmd_generate,
    "record": cmd_record,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ioc",
        description="IOC event-processing backend. Every setting comes from IOC_* variables.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "demo",
        help="everything on embedded defaults: broker, database, MQTT, "
        "worker, bridge, API and simulators",
    )
    sub.add_parser("worker", help="the faust worker (procedure and sensor streams)")
    sub.add_parser(
        "alerts",
        help="the alert stage: the alert engine on the SLA transitions, "
        "alerts and their outbox in PostgreSQL",
    )
    sub.add_parser("api", help="the API: ingest, REST reads, websocket and the wall page")
    sub.add_parser("bridge", help="the MQTT -> Kafka bridge")
    sub.add_parser(
        "notify", help="send decided alert deliveries: webhooks and email, retried, per endpoint"
    )
    sim = sub.add_parser(
        "simulate",
        help="simulated procedure events and sensor readings, live",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_scenarios_help(),
    )
    sim.add_argument(
        "--to",
        choices=("http", "kafka"),
        default="http",
        help="where procedure events go (sensors always go over MQTT)",
    )
    sim.add_argument("--no-sensors", dest="sensors", action="store_false")
    sim.add_argument(
        "--scenario",
        type=_scenario,
        metavar="NAME",
        help="what the simulated sensors show (default: IOC_SIM_SCENARIO, normal; see below)",
    )
    sim.add_argument(
        "--seed",
        type=int,
        help="seed of the sensor readings (default: IOC_SIM_SEED); the same seed "
        "and IOC_CLOCK_START give the same readings",
    )
    rep = sub.add_parser("replay", help="send an NDJSON file of procedure events to Kafka")
    rep.add_argument("file", help="NDJSON events ('-' for standard input)")
    rep.add_argument(
        "--speed", default="max", help="times faster than the events' own pace, or 'max' (default)"
    )
    rep.add_argument(
        "--until", type=_instant, help="then move event-time workers' clocks to this instant"
    )
    rep.add_argument(
        "--shuffle",
        type=int,
        metavar="SEED",
        help="send in a random order (for testing that order does not matter)",
    )
    rep.add_argument(
        "--repeat",
        type=float,
        default=0.0,
        help="with --shuffle: send this share of the events twice",
    )
    gen = sub.add_parser("generate", help="write a simulated load as NDJSON")
    gen.add_argument(
        "--start", required=True, type=_instant, help="first receipt instant (ISO 8601, offset)"
    )
    gen.add_argument("--days", type=float, default=7.0)
    gen.add_argument("--rate", type=float, help="receipts per office hour (profile default)")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--out", default="-")
    rec = sub.add_parser("record", help="write the procedure-events topic as NDJSON")
    rec.add_argument("--out", default="-")
    rec.add_argument("--idle", type=float, default=5.0, help="stop after this many idle seconds")
    kpis = sub.add_parser("kpis", help="KPI commands")
    kpisub = kpis.add_subparsers(dest="kpis_command", required=True)
    rc = kpisub.add_parser("recompute", help="rebuild every counter from the stored raw events")
    rc.add_argument(
        "--until", type=_instant, help="the instant the KPIs are for (default: the workers' clock)"
    )
    rc.add_argument("--force", action="store_true", help="even if workers seem to be running")
    db = sub.add_parser("db", help="database commands")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("migrate", help="create or update the schema")
    schema = sub.add_parser("schema", help="print the JSON Schema of an event contract")
    schema.add_argument("kind", choices=("procedure-event", "sensor-reading"))
    return p


def _scenarios_help() -> str:
    from simulators.sensor_scenarios import SCENARIOS

    lines = ["sensor scenarios (times in clock time from IOC_CLOCK_START, daily):"]
    lines += [f"  {name:<18} {what}" for name, (what, _) in SCENARIOS.items()]
    return "\n".join(lines)


def _scenario(text: str) -> str:
    """A sensor scenario's name, checked when the command line is read."""
    from simulators.sensor_scenarios import check_scenario

    try:
        return check_scenario(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _instant(text: str) -> str:
    """An ISO 8601 instant with its UTC offset, checked when the command line is read."""
    from ioc.clock import parse_instant

    try:
        parse_instant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{exc} (write it as e.g. 2026-03-16T08:00:00+07:00)"
        ) from None
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        # a usage error, like a bad argument: no traceback
        for line in settings_problems(exc):
            print(f"ioc: {line}", file=sys.stderr)
        return 2
    _logging(settings)
    try:
        if settings.database_url:
            psycopg.conninfo.conninfo_to_dict(settings.database_url)
    except psycopg.ProgrammingError as exc:
        print(
            f"ioc: IOC_DATABASE_URL: not a connection string: {str(exc).strip()}", file=sys.stderr
        )
        return 2
    try:
        if args.command == "db":
            return {"migrate": cmd_migrate}[args.db_command](settings, args)
        if args.command == "kpis":
            return {"recompute": cmd_recompute}[args.kpis_command](settings, args)
        return COMMANDS[args.command](settings, args)
    except (RegistryError, CalendarError, ScorecardError, ConfigError) as exc:
        # a configured file that is missing or wrong: its own message, no traceback
        print(f"ioc: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (``ioc generate | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
