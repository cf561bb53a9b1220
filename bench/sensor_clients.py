"""The processes of the sensor benchmark other than ``ioc`` itself.

    python -m bench.sensor_clients publish --url mqtt://127.0.0.1:1883 --qos 1
        --count 100000 --sensors 1000 --first 0 --run r1 --name p0
    python -m bench.sensor_clients baseline-bridge

``publish``: one MQTT connection publishing ``--count`` air-quality
readings as fast as it can, round robin over its sensors (``{run}-{n}`` for
n from ``--first``), each with its own ``event_id`` and each round over the
sensors a second later (one reading per sensor and instant); QoS 1 with up to 5000
messages not yet acknowledged. It prints ``READY``, waits for a line on
stdin, publishes, waits until the broker acknowledged every QoS 1 message
(QoS 0: until every message is written to the socket) and prints a JSON
summary.

``baseline-bridge``: ``ioc bridge`` with its batch forced to one message, so
one Kafka message per reading, each awaited before the next (the baseline).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from urllib.parse import urlsplit

WINDOW = 5000  # messages published and not yet acknowledged (QoS 0: not yet written)
AREAS = ("00166", "00004", "00008", "00091", "00145", "00190", "00226", "00334")


def publish(args: argparse.Namespace) -> int:
    from ioc.clock import to_iso

    url = urlsplit(args.url)
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 1883))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_connect(f"bench-{args.run}-{args.name}"))
    connack = _read(sock, 4)
    if connack[0] != 0x20 or connack[3] != 0:
        raise SystemExit(f"the broker refused the connection: {connack!r}")
    topics = [
        _text(f"ioc/sensors/{AREAS[n % len(AREAS)]}/air_quality/{args.run}-{n}")
        for n in range(args.first, args.first + args.sensors)
    ]
    print("READY", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    acks = _Acks(sock)
    out = bytearray()
    # each round over the sensors one second later, ending about now: one
    # reading per sensor and instant, as a real sensor sends
    rounds = -(-args.count // len(topics))
    first_round = int(time.time()) - rounds
    ts = ""
    for i in range(args.count):
        if i % len(topics) == 0:
            ts = to_iso(first_round + i // len(topics))
        body = (
            f'{{"ts":"{ts}","values":{{"pm25":{i % 300}.5,"pm10":{i % 400}}},'
            f'"event_id":"{args.run}-{args.name}-{i}"}}'
        ).encode()
        out += _publish(topics[i % len(topics)], body, args.qos, i % 65535 + 1)
        if len(out) >= 65536:
            sock.sendall(out)
            out.clear()
            if args.qos:
                acks.wait_until(i + 1 - WINDOW)
    sock.sendall(out)
    sent = time.monotonic()
    if args.qos:
        acks.wait_until(args.count)
    done = time.monotonic()
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    summary = {
        "published": args.count,
        "publish_s": round(sent - started, 3),
        "acked_s": round(done - started, 3),
        "started": started,
    }
    print(json.dumps(summary), flush=True)
    return 0


# A minimal MQTT 3.1.1 publisher (CONNECT, PUBLISH, PUBACK, DISCONNECT): paho's
# client took most of a core at 7,000 QoS 1 messages/s, so the load generator,
# not the pipeline, set the pace.


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value: str) -> bytes:
    raw = value.encode()
    return len(raw).to_bytes(2, "big") + raw


def _connect(client_id: str) -> bytes:
    # protocol MQTT level 4, clean session, keepalive 60 s
    body = _text("MQTT") + b"\x04\x02" + (60).to_bytes(2, "big") + _text(client_id)
    return b"\x10" + _length(len(body)) + body


def _publish(topic: bytes, payload: bytes, qos: int, packet_id: int) -> bytes:
    head = topic + (packet_id.to_bytes(2, "big") if qos else b"")
    return bytes((0x30 | qos << 1,)) + _length(len(head) + len(payload)) + head + payload


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise SystemExit("the broker closed the connection")
        data += chunk
    return data


class _Acks:
    """PUBACKs counted as they come (4 bytes each: nothing else is asked for)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.bytes = 0

    def wait_until(self, count: int) -> None:
        while self.bytes // 4 < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("the broker closed the connection")
            self.bytes += len(chunk)


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
