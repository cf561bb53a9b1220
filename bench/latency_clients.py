"""The two clients of the event -> screen benchmark (bench/latency.py), each
run as its own process, apart from the server's:

    python -m bench.latency_clients load --url URL --token T --rate R ...
    python -m bench.latency_clients screen --url WS_URL --token T --out FILE

``load`` posts simulated procedure events to the HTTP ingest at a steady rate:
every ``--interval`` s, one NDJSON batch of the events due by then, several
requests in flight at once so that a slow answer does not slow the rate. Each
event's ``ts`` is the IOC clock's time when its batch is sent (the clock the
worker runs on: ``--clock-start`` at real time ``--anchor``), so the worker
sees a live load. It prints ``GO <epoch>`` when it starts sending and, at the
end, one JSON line: the timeline and what the ingest accepted.

``screen`` subscribes to the channels a wall screen follows, notes the wall
time each message arrives, and on SIGTERM writes the KPI deltas with their
trace (arrival time first) to ``--out``, one JSON object per line. It prints
``SUBSCRIBED`` once the hub has answered its subscription.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop
from websockets.asyncio.client import connect

# what the wall page subscribes to (ui_feed/static/wall.js)
WALL_CHANNELS = ["kpi/province", "kpi/commune/*", "kpi/agency/*", "alerts", "sensor/*"]
IN_FLIGHT = 16  # requests the load generator keeps open at most
POST_TIMEOUT = 30.0


# -- load ------------------------------------------------------------------------


def templates(count: int) -> list[bytes]:
    """``count`` simulated events (Hà Nội scale: many communes, agencies,
    procedures; each dossier's events in order), encoded without their
    ``ts``: ``b'"ts":"..."'`` is put back in front when sent."""
    from bench.throughput import generate_load

    out = []
    for line in generate_load(count):
        event = orjson.loads(line)
        del event["ts"]
        out.append(orjson.dumps(event)[1:])  # without the opening brace
    return out


def stamped(lines: list[bytes], ts: str) -> bytes:
    head = b'{"ts":"' + ts.encode() + b'",'
    return b"\n".join(head + rest for rest in lines)


class Ingest:
    """Keep-alive HTTP/1.1 connections to the ingest, the answers parsed by
    hand: the load shares the machine with the stack, and a general-purpose
    client (httpx) took a third of a core for 200 requests a second."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = (
            f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\n"
            f"content-type: application/x-ndjson\r\nauthorization: Bearer {token}\r\n"
            "content-length: "
        ).encode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """The status and body of the answer to one POST of ``body``. A kept
        connection the server closed meanwhile (its keep-alive timeout) is
        replaced by a new one, as HTTP clients do."""
        while self.idle:
            reader, writer = self.idle.pop()
            try:
                return await self._post(reader, writer, body)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise  # cut while answering: not a closed idle connection
        return await self._post(*await asyncio.open_connection(self.host, self.port), body)

    async def _post(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes
    ) -> tuple[int, bytes]:
        try:
            writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            status = int(head[9:12])
            at = head.index(b"content-length:") + 15
            payload = await reader.readexactly(int(head[at : head.index(b"\r\n", at)]))
        except BaseException:
            writer.close()
            raise
        if b"connection: close" in head:
            writer.close()
        else:
            self.idle.append((reader, writer))
        return status, payload

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ingest = Ingest(args.url, args.token)
        self.measure_from = 0.0
        self.measure_to = 0.0
        self.accepted = 0  # events accepted, of batches sent in the measured window
        self.sent = 0
        self.requests = 0
        self.failed = 0  # answers other than 202 (every batch)
        self.failures: Counter[str] = Counter()  # by status or error
        self.rejected = 0
        self.post_seconds: list[float] = []

    async def post(self, body: bytes, n: int, slot: asyncio.Semaphore) -> None:
        started = time.time()
        measured = self.measure_from <= started < self.measure_to
        try:
            status, payload = await asyncio.wait_for(self.ingest.post(body), POST_TIMEOUT)
            ok = status == 202
            answer = orjson.loads(payload) if ok else {}
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            ok, answer, status = False, {}, type(exc).__name__
        finally:
            slot.release()
        if not ok:
            self.failed += 1
            self.failures[str(status)] += 1
        self.rejected += int(answer.get("rejected", 0))
        if measured:
            self.requests += 1
            self.sent += n
            self.accepted += int(answer.get("accepted", 0))
            self.post_seconds.append(time.time() - started)

    async def run(self) -> dict[str, Any]:
        from ioc.clock import parse_instant, to_iso

        a = self.args
        total = a.rate * (a.warmup + a.seconds)
        lines = templates(int(total * 1.02) + 100)
        origin = parse_instant(a.clock_start)
        slot = asyncio.Semaphore(IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        try:
            t0 = time.time()
            self.measure_from, self.measure_to = t0 + a.warmup, t0 + a.warmup + a.seconds
            print(f"GO {t0}", flush=True)
            issued, tick = 0, 0
            while True:
                now = time.time()
                if now >= self.measure_to:
                    break
                due = min(int(a.rate * (now - t0)), len(lines)) - issued
                if due > 0:
                    await slot.acquire()  # full: the next batch carries what is due meanwhile
                    now = time.time()
                    due = min(int(a.rate * (now - t0)), len(lines)) - issued
                    body = stamped(lines[issued : issued + due], to_iso(origin + now - a.anchor))
                    task = asyncio.create_task(self.post(body, due, slot))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    issued += due
                tick += 1
                await asyncio.sleep(max(0.0, t0 + tick * a.interval - time.time()))
            if tasks:
                await asyncio.wait(tasks)
        finally:
            self.ingest.close()
        posts = sorted(self.post_seconds)
        return {
            "t0": t0,
            "measure_from": self.measure_from,
            "measure_to": self.measure_to,
            "issued": issued,
            "sent": self.sent,
            "accepted": self.accepted,
            "requests": self.requests,
            "failed": self.failed,
            "failures": dict(self.failures),
            "rejected": self.rejected,
            "events_per_s": self.accepted / a.seconds,
            "post_p50": posts[len(posts) // 2] if posts else None,
            "post_p99": posts[int(len(posts) * 0.99)] if posts else None,
        }


# -- screen ----------------------------------------------------------------------


async def screen(url: str, out: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    got: list[tuple[float, bytes]] = []
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channels": WALL_CHANNELS}))
        await ws.send(json.dumps({"op": "ping"}))
        while True:  # the hub answers in order: the pong follows the snapshots
            if orjson.loads(await ws.recv(decode=False)).get("type") == "pong":
                break
        print("SUBSCRIBED", flush=True)
        stopping = asyncio.create_task(stop.wait())
        while not stop.is_set():
            receiving = asyncio.create_task(ws.recv(decode=False))
            done, _ = await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if receiving in done:
                # the arrival time first; decoding waits for the end
                got.append((time.time(), receiving.result()))
            else:
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receiving
    with out.open("wb") as f:
        for received, raw in got:
            msg = orjson.loads(raw)
            if msg.get("type") != "delta" or not str(msg.get("channel", "")).startswith("kpi/"):
                continue
            trace = msg["data"].get("trace") or {}
            row = {"received": received, "channel": msg["channel"], **trace}
            f.write(orjson.dumps(row) + b"\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load")
    load.add_argument("--url", required=True)
    load.add_argument("--token", required=True)
    load.add_argument("--rate", type=float, required=True)
    load.add_argument("--warmup", type=float, default=3.0)
    load.add_argument("--seconds", type=float, default=20.0)
    load.add_argument("--interval", type=float, default=0.005)
    load.add_argument("--clock-start", required=True)
    load.add_argument("--anchor", type=float, required=True)
    scr = sub.add_parser("screen")
    scr.add_argument("--url", required=True)
    scr.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "load":
        result = uvloop.run(Load(args).run())
        print(json.dumps(result), flush=True)
    else:
        uvloop.run(screen(args.url, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
