"""Test doubles for the alert engine, for this project's tests and a
deployment's own rules: ``ListOutbox``, an outbox that keeps what the
engine decided in lists, as the real one keeps table rows; and for the
notifier, real local endpoints: ``WebhookReceiver`` (fast, slow or failing),
``refusing_url`` and ``SmtpSink``."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alerts.model import Change, Delivery, Outcome


class ListOutbox:
    """Keeps the history and the deliveries of every ``Outcome`` written.

    Like the outbox table, it keeps one delivery per idempotency key: a
    decision written again (a replay, a retried transaction) is counted in
    ``duplicates`` and not kept twice.
    """

    def __init__(self) -> None:
        self.history: list[Change] = []
        self.deliveries: list[Delivery] = []
        self.duplicates = 0
        self._keys: set[str] = set()

    def write(self, outcome: Outcome) -> None:
        self.history.extend(outcome.changes)
        for d in outcome.deliveries:
            if d.key in self._keys:
                self.duplicates += 1
                continue
            self._keys.add(d.key)
            self.deliveries.append(d)

    def to(self, recipient: str) -> list[Delivery]:
        """The deliveries decided for one leader, in order."""
        return [d for d in self.deliveries if d.recipient == recipient]

    def of(self, alert_id: str) -> list[Change]:
        """The history of one alert, in order."""
        return [c for c in self.history if getattr(c, "alert_id", None) == alert_id]


# -- endpoints for testing delivery ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """One request a ``WebhookReceiver`` got, and when (``time.time()``)."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def key(self) -> str:
        return self.headers.get("idempotency-key", "")


class WebhookReceiver:
    """A real local HTTP server standing in for a webhook endpoint, in a
    thread, so the notifier under test talks to it over TCP.

    ``delay`` seconds before answering (a slow endpoint: 30 s models one
    that hangs), then ``status``; change both while it runs. ``received``
    lists answered requests, ``started`` counts requests that arrived (so
    ``started - len(received)`` are still waiting). Closing it releases
    waiting requests at once. Use as a context manager::

        with WebhookReceiver() as fast, WebhookReceiver(delay=30) as slow:
            ...  # point leaders' webhooks at fast.url and slow.url
    """

    def __init__(self, delay: float = 0.0, status: int = 200) -> None:
        self.delay = delay
        self.status = status
        self.received: list[Received] = []
        self.started = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do

            def do_POST(self) -> None:
                with owner._lock:
                    owner.started += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if owner.delay:
                    owner._closing.wait(owner.delay)
                status = owner.status
                with owner._lock:
                    owner.received.append(
                        Received(
                            time.time(),
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet in tests

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()

    def keys(self) -> list[str]:
        with self._lock:
            return [r.key for r in self.received]

    @property
    def waiting(self) -> int:
        """Requests that arrived and are not answered yet."""
        with self._lock:
            return self.started - len(self.received)


def refusing_url() -> str:
    """A webhook URL on a local port nobody listens on: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


class SmtpSink:
    """A real local SMTP server (aiosmtpd, from the ``dev`` extra) keeping
    every message it accepts, as ``email.message.Message`` objects."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(message_from_bytes(envelope.content, policy=default))
                return "250 OK"

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
