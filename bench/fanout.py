"""Fan-out to wall screens: the hub against a naive broadcast.

    python -m bench.fanout [--clients 2000] [--rate 10] [--seconds 20]
                           [--stalled-share 0.1] [--channels 16] [--procs 4]

Four cases in one run, each on a fresh server process
(``bench/fanout_server.py``: the API's app and uvicorn set-up, a publisher in
place of the Kafka feed) and ``--procs`` client processes
(``bench/fanout_client.py``):

- hub, all reading: ``--clients`` screens, each on one of ``--channels``
  conflated KPI channels published ``--rate`` times a second;
- naive, all reading: the same against ``bench/naive_broadcast.py``;
- hub and naive with stalled screens: the same readers plus
  ``clients x stalled-share`` screens that subscribe and then never read.
  The readers are the same in both runs, so a change in their latency is the
  stalled screens' doing.

After every screen had its first update and ``--warmup`` seconds more, the
readers record for ``--seconds``: delivery latency (receive instant in the
client process minus the publish instant stamped in the message), messages
delivered, the server's CPU (user + system) per 1,000 delivered messages,
its RSS at the start and end of the window and the peak (sampled every
0.2 s), and the screens the server closed with 1013 (the hub's
``dropped_slow`` from ``/metrics``, and the close codes the screens saw).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.fanout_server import TOKEN, raise_fd_limit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the benchmark server did not listen on {port}")


def split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def percentile(ordered: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted microseconds, in milliseconds."""
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k] / 1000


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        m[1]: float(m[2]) for m in re.finditer(r"^(ioc_ws_\w+) ([0-9.e+-]+)$", text, re.MULTILINE)
    }


def run_case(
    kind: str, readers: int, stalled: int, args: argparse.Namespace, logs: Path
) -> dict[str, Any]:
    port = free_port()
    log = (logs / f"server-{kind}-{stalled}.log").open("wb")
    cmd = [sys.executable, "-m", "bench.fanout_server", "--kind", kind, "--port", str(port)]
    cmd += ["--channels", str(args.channels), "--rate", str(args.rate)]
    server = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    clients: list[subprocess.Popen[str]] = []
    try:
        wait_for_port(port)
        url = f"ws://127.0.0.1:{port}/ws?token={TOKEN}"
        first = 0
        result_files: list[Path] = []
        for r, s in zip(split(readers, args.procs), split(stalled, args.procs), strict=True):
            cmd = [sys.executable, "-m", "bench.fanout_client", "--url", url]
            cmd += ["--readers", str(r), "--stalled", str(s), "--channels", str(args.channels)]
            result_files.append(logs / f"client-{kind}-{stalled}-{first}.json")
            cmd += ["--first", str(first), "--result", str(result_files[-1])]
            first += r + s
            clients.append(
                subprocess.Popen(
                    cmd,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    cwd=ROOT,
                )
            )
        ready = [c.stdout.readline().split() for c in clients if c.stdout is not None]
        if any(len(r) != 3 or r[0] != "ready" for r in ready):
            raise RuntimeError(f"a client process failed; see {logs}")
        proc = psutil.Process(server.pid)
        client_procs = [psutil.Process(c.pid) for c in clients]
        time.sleep(args.warmup)
        t0 = time.time() + 0.3
        t1 = t0 + args.seconds
        for c in clients:
            assert c.stdin is not None
            c.stdin.write(f"go {t0} {t1}\n")
            c.stdin.flush()
        time.sleep(max(0.0, t0 - time.time()))
        published0 = scrape(port).get("ioc_ws_published_total", 0)
        cpu0, rss0 = proc.cpu_times(), proc.memory_info().rss
        clients_cpu0 = sum(sum(p.cpu_times()[:2]) for p in client_procs)
        peak = rss0
        while time.time() < t1:
            time.sleep(0.2)
            peak = max(peak, proc.memory_info().rss)
        cpu1, rss1 = proc.cpu_times(), proc.memory_info().rss
        clients_cpu = sum(sum(p.cpu_times()[:2]) for p in client_procs) - clients_cpu0
        peak = max(peak, rss1)
        metrics = scrape(port)
        for c in clients:
            c.communicate(timeout=120)
        results = [json.loads(f.read_text()) for f in result_files]
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
        server.terminate()
        server.wait(30)
        log.close()
    latencies = sorted(x for r in results for x in r["latencies_us"])
    delivered = len(latencies)
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    closes: dict[str, int] = {}
    for r in results:
        for code, n in {**r["reader_closes"], **r["stalled_closes"]}.items():
            closes[code] = closes.get(code, 0) + n
    return {
        "server": kind,
        "readers": readers,
        "stalled": stalled,
        "connected": sum(int(r[1]) for r in ready),
        "failed": sum(int(r[2]) for r in ready),
        "readers_receiving": sum(r["readers_receiving"] for r in results),
        "stalled_recorded": sum(r["stalled_recorded"] for r in results),
        "delivered": delivered,
        "per_reader_per_s": delivered / max(1, readers) / args.seconds,
        # the publisher shares the server's loop: under load it falls behind
        "published_per_channel_s": (metrics.get("ioc_ws_published_total", 0) - published0)
        / args.channels
        / args.seconds,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1] / 1000 if latencies else float("nan"),
        "cpu_s": cpu,
        "cpu_s_per_1000": cpu / delivered * 1000 if delivered else float("nan"),
        "server_cores": cpu / args.seconds,
        "clients_cores": clients_cpu / args.seconds,
        "rss_start_mib": rss0 / 2**20,
        "rss_end_mib": rss1 / 2**20,
        "rss_peak_mib": peak / 2**20,
        "dropped_slow": int(metrics.get("ioc_ws_dropped_slow_total", 0)),
        "closed_1013": closes.get("1013", 0),
        "closes": closes,
        "pending_end": int(metrics.get("ioc_ws_pending", 0)),
    }


HEADER = (
    "| server | screens (reading+stalled) | connected | published/channel/s | delivered "
    "| /reader/s "
    "| p50 ms | p90 ms | p99 ms | max ms | CPU s/1000 msgs | server/clients cores "
    "| RSS start→end MiB (peak) "
    "| pending at end | dropped 1013 (hub/seen) |"
)


def row(r: dict[str, Any]) -> str:
    return (
        f"| {r['server']} | {r['readers']}+{r['stalled']} | {r['connected']} "
        f"| {r['published_per_channel_s']:.1f} | {r['delivered']} | {r['per_reader_per_s']:.1f} "
        f"| {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} "
        f"| {r['cpu_s_per_1000']:.3f} | {r['server_cores']:.2f}/{r['clients_cores']:.2f} "
        f"| {r['rss_start_mib']:.0f}→{r['rss_end_mib']:.0f} ({r['rss_peak_mib']:.0f}) "
        f"| {r['pending_end']} | {r['dropped_slow']}/{r['closed_1013']} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=2000, help="reading screens")
    parser.add_argument("--rate", type=float, default=10.0, help="updates/s per channel")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window")
    parser.add_argument("--stalled-share", type=float, default=0.1)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--procs", type=int, default=4, help="client processes")
    parser.add_argument(
        "--servers",
        default="hub,naive",
        help="comma-separated: hub, naive (the baseline), hub-asgi (the hub without direct writes)",
    )
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after all connected")
    parser.add_argument("--out", type=Path, default=RESULTS / "fanout-latest.json")
    args = parser.parse_args()
    raise_fd_limit()
    stalled = round(args.clients * args.stalled_share)
    logs = Path(tempfile.mkdtemp(prefix="ioc-fanout-"))
    kinds = args.servers.split(",")
    cases = [(kind, s) for s in (0, stalled) for kind in kinds]
    rows = []
    for kind, s in cases:
        print(f"{kind}: {args.clients} reading + {s} stalled screens …", flush=True)
        rows.append(run_case(kind, args.clients, s, args, logs))
    print()
    print(
        f"{args.clients} reading screens, {args.channels} channels x {args.rate:g} updates/s, "
        f"{args.seconds:g} s measured, {os.cpu_count()} CPUs (server, clients and publisher "
        "share them)"
    )
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    for r in rows:
        print(row(r))
    for kind in kinds:
        base, with_stalled = (r for r in rows if r["server"] == kind)
        change = with_stalled["p99_ms"] / base["p99_ms"] - 1
        print(f"{kind}: readers' p99 with stalled screens {change:+.0%} against without")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows}))
    print(f"logs in {logs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
