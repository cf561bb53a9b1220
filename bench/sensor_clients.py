"""The processes of the sensor benchmark other than ``ioc`` itself.

    python -m bench.sensor_clients publish --url mqtt://127.0.0.1:1883 --qos 1
        --count 100000 --sensors 1000 --first 0 --run r1 --name p0
    python -m bench.sensor_clients baseline-bridge

``publish``: one paho client publishing ``--count`` air-quality readings as
fast as it can, round robin over its sensors (``{run}-{n}`` for n from
``--first``), each with its own ``event_id``; QoS 1 with up to 1000 messages
in flight and at most 5000 waiting in the client. It prints ``READY``, waits
for a line on stdin, publishes, waits
until the broker acknowledged every QoS 1 message (QoS 0: until every message
is written to the socket) and prints a JSON summary.

``baseline-bridge``: ``ioc bridge`` with its batch forced to one message, so
one Kafka message per reading, each awaited before the next (the baseline).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from urllib.parse import urlsplit

WINDOW = 5000  # messages published and not yet acknowledged (QoS 0: not yet written)
AREAS = ("00166", "00004", "00008", "00091", "00145", "00190", "00226", "00334")


def publish(args: argparse.Namespace) -> int:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from ioc.clock import to_iso

    url = urlsplit(args.url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{args.run}-{args.name}")
    client.max_inflight_messages_set(1000)
    client.connect(url.hostname or "127.0.0.1", url.port or 1883, keepalive=60)
    client.loop_start()
    topics = [
        f"ioc/sensors/{AREAS[n % len(AREAS)]}/air_quality/{args.run}-{n}"
        for n in range(args.first, args.first + args.sensors)
    ]
    print("READY", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    window: deque[mqtt.MQTTMessageInfo] = deque()
    ts = ""
    for i in range(args.count):
        if i % 1000 == 0:
            ts = to_iso(time.time())
        body = (
            f'{{"ts":"{ts}","values":{{"pm25":{i % 300}.5,"pm10":{i % 400}}},'
            f'"event_id":"{args.run}-{args.name}-{i}"}}'
        )
        window.append(client.publish(topics[i % len(topics)], body, qos=args.qos))
        if len(window) > WINDOW:  # paho's own queue is bounded: wait for the oldest
            window.popleft().wait_for_publish(timeout=600)
    sent = time.monotonic()
    for info in window:
        info.wait_for_publish(timeout=600)
    done = time.monotonic()
    client.disconnect()
    client.loop_stop()
    summary = {
        "published": args.count,
        "publish_s": round(sent - started, 3),
        "acked_s": round(done - started, 3),
        "started": started,
    }
    print(json.dumps(summary), flush=True)
    return 0


def baseline_bridge() -> int:
    import streams.sources.mqtt_bridge as bridge
    from ioc.cli import main

    if not hasattr(bridge, "BATCH_MAX"):
        raise SystemExit("streams.sources.mqtt_bridge has no BATCH_MAX: update the baseline")
    bridge.BATCH_MAX = 1
    return main(["bridge"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("publish")
    p.add_argument("--url", required=True)
    p.add_argument("--qos", type=int, choices=(0, 1), default=1)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--sensors", type=int, required=True)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--run", required=True)
    p.add_argument("--name", required=True)
    sub.add_parser("baseline-bridge")
    args = parser.parse_args()
    if args.command == "publish":
        return publish(args)
    return baseline_bridge()


if __name__ == "__main__":
    sys.exit(main())
