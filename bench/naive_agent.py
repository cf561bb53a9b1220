"""The baseline: a naive faust agent, one event per Kafka message and a
table update per event (the dossier's state, then a counter per commune).
Run as ``python -m bench.naive_agent worker``; it prints its rate when it
has seen BENCH_EVENTS events."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import faust

PREFIX = os.environ["BENCH_PREFIX"]
TOTAL = int(os.environ["BENCH_EVENTS"])

app = faust.App(
    f"{PREFIX}naive",
    broker=os.environ["BENCH_KAFKA_URL"],
    value_serializer="raw",
    key_serializer="raw",
    web_enabled=False,
    datadir=os.environ.get("BENCH_DATADIR", f"/tmp/{PREFIX}naive"),
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=10.0,
    broker_heartbeat_interval=1.0,
    topic_partitions=4,
)
events_topic = app.topic(f"{PREFIX}naive-events", value_type=bytes, key_type=bytes)
dossiers = app.Table("dossiers", default=dict, partitions=4)
per_commune = app.Table("per-commune", default=int, partitions=4)
seen = {"n": 0, "first": 0.0}


@app.agent(events_topic)
async def naive(stream: Any) -> None:
    async for key, value in stream.items():
        if not seen["n"]:
            seen["first"] = time.monotonic()
        event = json.loads(value)
        state = dict(dossiers[key])
        state[event["type"]] = event["ts"]
        if event["type"] == "received":
            state["commune"] = event.get("commune") or "-"
        dossiers[key] = state
        per_commune[state.get("commune", "-")] += 1
        seen["n"] += 1
        if seen["n"] == TOTAL:
            rate = TOTAL / (time.monotonic() - seen["first"])
            print(f"NAIVE {rate:.0f} events/s", flush=True)
            sys.stdout.flush()
            os._exit(0)


if __name__ == "__main__":
    app.main()
