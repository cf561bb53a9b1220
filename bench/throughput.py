"""Throughput and memory of the procedure worker, against a naive baseline.

    python -m bench.throughput [--events 400000] [--naive-events 60000]
                               [--open-dossiers 1000000] [--skip-naive] [--skip-memory]

In one run, on a fresh Tansu broker and a fresh PostgreSQL database:

1. ``ioc worker`` (event time, every commit to PostgreSQL) consumes a
   simulated Hà Nội-scale load already waiting in Kafka (NDJSON envelopes,
   as the ingest and replay send them). Reported: events per second from the
   first commit to the last, and over the middle 80 %.
2. The baseline: a naive faust agent, one event per message and a table
   update per event (bench/naive_agent.py), on the same broker.
3. Memory: one million received, never finished dossiers through the worker;
   its resident memory afterwards.

Figures are printed and written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database(base: str) -> str:
    name = f"ioc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + "/" + name


def drop(base: str, url: str) -> None:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def committed(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(
            conn.execute("SELECT coalesce(sum(seq), 0) FROM worker_partitions").fetchone()[0]
        )


def generate_load(events: int) -> list[bytes]:
    """A Hà Nội-scale simulated load: 1,900 receipts per office hour."""
    from ioc.calendar import load_calendar
    from ioc.clock import parse_instant
    from ioc.registry import load_registry
    from ioc.settings import PACKAGE_DATA
    from simulators.procedures import DossierPlanner, encode, generate

    registry = load_registry(PACKAGE_DATA / "province-01-ha-noi.toml")
    calendar = load_calendar(PACKAGE_DATA / "calendar-01-ha-noi.toml")
    planner = DossierPlanner(registry, calendar, seed=3)
    start = parse_instant("2026-03-02T00:00:00+07:00")
    out = []
    for event in generate(planner, start, start + 60 * 86400, 1900):
        out.append(encode(event))
        if len(out) >= events:
            break
    return out


def receipts(n: int) -> list[bytes]:
    """``n`` dossiers received in one office day (8 h), none finished yet: what
    tracking them costs, before any of them ages."""
    from ioc.clock import parse_instant, to_iso

    base = parse_instant("2026-03-02T08:00:00+07:00")
    lines = []
    for i in range(n):
        ts = to_iso(round(base + i * 28800 / n))
        lines.append(
            json.dumps(
                {
                    "schema": 1,
                    "event_id": f"open-{i}",
                    "type": "received",
                    "dossier_id": f"OPEN-{i:08d}",
                    "ts": ts,
                    "province": "01",
                    "centre": "hcc-00166",
                    "agency": "ubnd-00166",
                    "commune": "00166",
                    "procedure_code": "1.000005",
                    "field": "ho-tich",
                    "channel": "online",
                    "allotted_working_days": 15,
                    "fee_required": False,
                }
            ).encode()
        )
    return lines


async def preload(bootstrap: str, prefix: str, lines: list[bytes], single: bool = False) -> float:
    """Put the events in Kafka before anyone reads them; returns seconds."""
    from ioc.topics import Topics
    from streams.kafka import Producer, ensure_topics, topic_layout

    topics = Topics(prefix)
    await ensure_topics(bootstrap, topic_layout(topics, 4, 2))
    if single:
        await ensure_topics(bootstrap, {f"{prefix}naive-events": 4})
    producer = Producer(bootstrap, "bench")
    await producer.start()
    started = time.monotonic()
    try:
        items = [(json.loads(line)["dossier_id"], line) for line in lines]
        if single:  # one event per message, keyed by dossier: the naive layout
            raw = producer._producer
            futures = [
                await raw.send(f"{prefix}naive-events", line, key=key.encode())
                for key, line in items
            ]
            await asyncio.gather(*futures)
        else:
            for i in range(0, len(items), 20000):
                await producer.send_keyed(topics.procedure_events, items[i : i + 20000])
    finally:
        await producer.stop()
    return time.monotonic() - started


def run_worker(env: dict[str, str], url: str, expected: int, logs: Path) -> dict[str, Any]:
    with (logs / "worker.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ioc.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    marks: list[tuple[float, int]] = []
    peak = 0
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            peak = max(peak, psutil.Process(proc.pid).memory_info().rss)
            n = committed(url)
            if n:
                marks.append((time.monotonic(), n))
            if n >= expected:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited; see {logs}/worker.log")
            time.sleep(0.1)
        rss = psutil.Process(proc.pid).memory_info().rss
        cpu = psutil.Process(proc.pid).cpu_times()
    finally:
        proc.terminate()
        proc.wait(60)
    t0, n0 = marks[0]
    t1, n1 = marks[-1]
    lo = next(m for m in marks if m[1] >= 0.1 * expected)
    hi = next(m for m in marks if m[1] >= 0.9 * expected)
    return {
        "events": n1,
        "seconds": round(t1 - t0, 2),
        "events_per_s": round((n1 - n0) / (t1 - t0)),
        "sustained_events_per_s": round((hi[1] - lo[1]) / (hi[0] - lo[0])),
        "rss_mib": round(rss / 2**20),
        "peak_rss_mib": round(peak / 2**20),
        "cpu_s": round(cpu.user + cpu.system, 1),
    }


def run_naive(bootstrap: str, prefix: str, events: int, tmp: Path) -> float:
    env = dict(
        os.environ,
        BENCH_PREFIX=prefix,
        BENCH_EVENTS=str(events),
        BENCH_KAFKA_URL=f"kafka://{bootstrap}",
        BENCH_DATADIR=str(tmp / "naive"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench.naive_agent", "worker", "-l", "warn"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    for line in done.stdout.splitlines() + done.stderr.splitlines():
        if "NAIVE" in line:
            return float(line.split("NAIVE")[1].split()[0])
    raise RuntimeError(
        "the naive agent did not finish:\n" + done.stdout[-2000:] + done.stderr[-2000:]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--naive-events", type=int, default=60_000)
    parser.add_argument("--open-dossiers", type=int, default=1_000_000)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    from ioc.demo import start_tansu, wait_for_port

    base = os.environ.get("IOC_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    tmp = Path(tempfile.mkdtemp(prefix="ioc-bench-"))
    port = free_port()
    broker = start_tansu(port, tmp / "tansu.log")
    wait_for_port(port)
    bootstrap = f"127.0.0.1:{port}"
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    try:
        print(f"generating {args.events} events …", flush=True)
        lines = generate_load(args.events)
        url = database(base)
        prefix = f"b{uuid.uuid4().hex[:5]}."
        env = dict(
            os.environ,
            IOC_KAFKA_URL=f"kafka://{bootstrap}",
            IOC_DATABASE_URL=url,
            IOC_TOPIC_PREFIX=prefix,
            IOC_CLOCK="event",
            IOC_DATA_DIR=str(tmp / "data"),
            IOC_LOG_LEVEL="WARNING",
        )
        subprocess.run(
            [sys.executable, "-m", "ioc.cli", "db", "migrate"],
            env=env,
            check=True,
            capture_output=True,
        )
        results["preload_s"] = round(asyncio.run(preload(bootstrap, prefix, lines)), 1)
        print("worker …", flush=True)
        results["worker"] = run_worker(env, url, len(lines), tmp)
        drop(base, url)

        if not args.skip_naive:
            print("naive agent …", flush=True)
            naive_lines = lines[: args.naive_events]
            asyncio.run(preload(bootstrap, prefix, naive_lines, single=True))
            results["naive_events_per_s"] = round(
                run_naive(bootstrap, prefix, len(naive_lines), tmp)
            )

        if not args.skip_memory:
            print(f"{args.open_dossiers} open dossiers …", flush=True)
            url = database(base)
            prefix = f"m{uuid.uuid4().hex[:5]}."
            env.update(IOC_DATABASE_URL=url, IOC_TOPIC_PREFIX=prefix)
            subprocess.run(
                [sys.executable, "-m", "ioc.cli", "db", "migrate"],
                env=env,
                check=True,
                capture_output=True,
            )
            open_lines = receipts(args.open_dossiers)
            asyncio.run(preload(bootstrap, prefix, open_lines))
            results["open_dossiers"] = run_worker(env, url, len(open_lines), tmp)
            drop(base, url)
    finally:
        broker.terminate()
        broker.wait(10)

    w = results["worker"]
    print()
    print(
        f"worker: {w['events']} events in {w['seconds']} s = {w['events_per_s']} events/s "
        f"(sustained, middle 80%: {w['sustained_events_per_s']}/s), {w['cpu_s']} s CPU"
    )
    if "naive_events_per_s" in results:
        n = results["naive_events_per_s"]
        print(
            f"naive faust agent (a table update per event): {n} events/s "
            f"-> the worker is {w['events_per_s'] / n:.1f}x faster"
        )
    if "open_dossiers" in results:
        o = results["open_dossiers"]
        print(
            f"{o['events']} open dossiers tracked: worker resident memory {o['rss_mib']} MiB "
            f"(peak while loading {o['peak_rss_mib']} MiB)"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
