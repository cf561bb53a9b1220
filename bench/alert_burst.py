"""A burst of decided deliveries through ``ioc notify``, against a naive
sequential sender.

    python -m bench.alert_burst [--deliveries 5000] [--slow-share 0.5]
                                [--slow-delay 1.0] [--naive-seconds 30]

Like 17:00, when thousands of dossiers turn overdue at once: the deliveries
are inserted into ``alert_deliveries`` in one transaction, split between a
fast local webhook and a slow one (it answers after ``--slow-delay`` s),
interleaved. ``ioc notify`` (a real process, default settings) sends them.
Reported: deliveries per second until the fast endpoint has them all, the
fast endpoint's latency (decided_at -> received) p50/p90/p99/max, how long
the insert itself took (no row is visible before it commits), and the CPU
the notifier, this process (receivers, insert) and PostgreSQL used
meanwhile: on a small machine they share, that is what bounds a burst.

The baseline in the same run: a naive sender sending due rows one by one in
decision order (POST, mark sent), for ``--naive-seconds``; fast rows it did
not reach in that time count as later than that.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
from psycopg.types.json import Jsonb

from alerts.tables import ensure_alert_tables
from alerts.testing import WebhookReceiver

BASE = os.environ.get("IOC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def database() -> Iterator[str]:
    name = f"ioc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(BASE, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(BASE)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(BASE, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def burst(url: str, n: int, slow_share: float, fast: str, slow: str) -> dict[str, float]:
    """Insert ``n`` deliveries in one transaction; key -> decided_at."""
    every = max(1, round(1 / slow_share)) if slow_share > 0 else 0
    rows = []
    for i in range(n):
        to_slow = every and i % every == 0
        key = f"alert-{i}|1|leader-{i % 97}|webhook"
        payload = {"key": key, "alert_id": f"alert-{i}", "severity": "major", "step": 1}
        rows.append((key, f"alert-{i}", f"leader-{i % 97}", slow if to_slow else fast, payload))
    with psycopg.connect(url) as conn:
        ensure_alert_tables(conn)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO alert_deliveries (key, alert_id, step, recipient, channel, address,"
                " payload, decided_at) VALUES (%s, %s, 1, %s, 'webhook', %s, %s, now())",
                [(k, a, r, addr, Jsonb(p)) for k, a, r, addr, p in rows],
            )
        conn.commit()
        got = conn.execute("SELECT key, extract(epoch FROM decided_at) FROM alert_deliveries")
        return {k: float(t) for k, t in got.fetchall()}


def percentiles(values: list[float]) -> dict[str, float]:
    v = sorted(values)

    def at(q: float) -> float:
        return v[min(len(v) - 1, int(q * len(v)))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": v[-1]}


def show(label: str, lat: dict[str, float], limit: float | None = None) -> str:
    def f(x: float) -> str:
        return f"> {limit:.0f} s" if limit is not None and x == float("inf") else f"{x:.3f} s"

    return f"{label}: " + ", ".join(f"{k} {f(x)}" for k, x in lat.items())


def run_notifier(n: int, slow_share: float, slow_delay: float) -> None:
    with database() as url, WebhookReceiver() as fast, WebhookReceiver(slow_delay) as slow:
        with psycopg.connect(url, autocommit=True) as conn:
            ensure_alert_tables(conn)
        env = {
            **os.environ,
            "IOC_DATABASE_URL": url,
            "IOC_NOTIFY_METRICS_PORT": "0",
            "IOC_WEBHOOK_SECRET": "bench-secret-0123456789",
            "IOC_LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen([sys.executable, "-m", "ioc.cli", "notify"], env=env)
        try:
            time.sleep(3)  # started and polling: the burst is what is measured
            cpu0 = cpu_seconds(proc.pid)
            t0 = time.time()
            decided = burst(url, n, slow_share, fast.url, slow.url)
            # decided_at is the insert's start: no notifier sees a row before this
            visible = time.time()
            n_fast = sum(1 for k in decided if not _is_slow(k, slow_share))
            while len(fast.received) < n_fast:
                if proc.poll() is not None:
                    raise SystemExit("ioc notify stopped")
                time.sleep(0.01)
            done = max(r.at for r in fast.received)
            slow_done = len(slow.received)
            cpu = {k: v - cpu0[k] for k, v in cpu_seconds(proc.pid).items()}
        finally:
            proc.terminate()
            proc.wait(30)
        lat = percentiles([r.at - decided[r.key] for r in fast.received])
        total = n_fast + slow_done
        print(f"ioc notify: {n} deliveries ({n_fast} fast, {n - n_fast} slow at {slow_delay:g} s)")
        print(
            f"  fast endpoint had all {n_fast} after {done - t0:.2f} s: "
            f"{n_fast / (done - t0):.0f} deliveries/s to it; "
            f"{total / (done - t0):.0f}/s with the {slow_done} slow ones answered by then"
        )
        print("  " + show("fast latency", lat))
        print(f"  (the insert took {visible - t0:.2f} s of that: rows are visible once committed)")
        print(
            f"  CPU in those {done - t0:.2f} s ({os.cpu_count()} cores): "
            + ", ".join(f"{k} {v:.2f} s" for k, v in cpu.items())
            + f"; {1e3 * sum(cpu.values()) / total:.2f} ms per delivery in all"
        )


def cpu_seconds(notifier: int) -> dict[str, float]:
    """CPU time used so far by the notifier, this process (the receivers,
    and the insert) and PostgreSQL's processes, when it runs here; whatever
    else the machine runs is not counted."""

    def used(p: psutil.Process) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    pg = 0.0
    for p in psutil.process_iter(["name"]):
        if p.info["name"] in ("postgres", "postmaster"):
            with contextlib.suppress(psutil.Error):
                pg += used(p)
    return {
        "notifier": used(psutil.Process(notifier)),
        "receivers": used(psutil.Process()),
        "PostgreSQL": pg,
    }


def _is_slow(key: str, slow_share: float) -> bool:
    every = max(1, round(1 / slow_share)) if slow_share > 0 else 0
    i = int(key.split("|")[0].removeprefix("alert-"))
    return bool(every) and i % every == 0


def run_naive(n: int, slow_share: float, slow_delay: float, budget: float) -> None:
    """One row at a time: read the oldest due row, POST it, mark it sent."""
    with database() as url, WebhookReceiver() as fast, WebhookReceiver(slow_delay) as slow:
        t0 = time.time()
        decided = burst(url, n, slow_share, fast.url, slow.url)
        n_fast = sum(1 for k in decided if not _is_slow(k, slow_share))
        with psycopg.connect(url) as conn, httpx.Client(timeout=10) as client:
            while time.time() - t0 < budget:
                row = conn.execute(
                    "SELECT key, address, payload FROM alert_deliveries WHERE state = 'pending'"
                    " ORDER BY decided_at, key LIMIT 1"
                ).fetchone()
                if row is None:
                    break
                key, address, payload = row
                client.post(address, json=payload, headers={"Idempotency-Key": key})
                conn.execute("UPDATE alert_deliveries SET state = 'sent' WHERE key = %s", (key,))
                conn.commit()
        elapsed = time.time() - t0
        got = {r.key: r.at - decided[r.key] for r in fast.received}
        lat = percentiles(
            [got.get(k, float("inf")) for k in decided if not _is_slow(k, slow_share)]
        )
        sent = len(fast.received) + len(slow.received)
        print(f"naive sequential sender, same burst, stopped after {elapsed:.0f} s:")
        print(
            f"  fast endpoint got {len(fast.received)} of {n_fast}; "
            f"{sent / elapsed:.1f} deliveries/s"
        )
        print("  " + show("fast latency", lat, budget))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--deliveries", type=int, default=5000)
    p.add_argument("--slow-share", type=float, default=0.5)
    p.add_argument("--slow-delay", type=float, default=1.0)
    p.add_argument("--naive-seconds", type=float, default=30.0)
    a = p.parse_args()
    run_notifier(a.deliveries, a.slow_share, a.slow_delay)
    run_naive(a.deliveries, a.slow_share, a.slow_delay, a.naive_seconds)


if __name__ == "__main__":
    main()
