"""Test doubles for the alert engine, for this project's tests and a
deployment's own rules: ``ListOutbox``, an outbox that keeps what the
engine decided in lists, as the real one keeps table rows; and for the
notifier, real local endpoints: ``WebhookReceiver`` (fast, slow or failing),
``refusing_url`` and ``SmtpSink``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import default
from http import HTTPStatus
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
    """A real local HTTP/1.1 server standing in for a webhook endpoint, on
    its own event loop in a thread, so the notifier under test talks to it
    over TCP. It reads every request whole (request line, headers, the
    ``Content-Length`` body) and keeps connections alive, as real endpoints
    do; being asyncio, it costs far less per request than ``http.server``,
    so in a benchmark the receiver is not what is measured.

    ``delay`` seconds before answering (a slow endpoint: 30 s models one
    that hangs), then ``status``; change both while it runs. ``received``
    lists answered requests, ``started`` counts requests that arrived (so
    ``started - len(received)`` are still waiting; ``most_waiting`` is the
    most that ever waited at once). Closing it releases
    waiting requests at once. Use as a context manager::

        with WebhookReceiver() as fast, WebhookReceiver(delay=30) as slow:
            ...  # point leaders' webhooks at fast.url and slow.url
    """

    def __init__(self, delay: float = 0.0, status: int = 200) -> None:
        self.delay = delay
        self.status = status
        self.received: list[Received] = []
        self.started = 0
        self.most_waiting = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._closing = asyncio.Event()
        self._connections: set[asyncio.Task[None]] = set()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                with self._lock:
                    self.started += 1
                    self.most_waiting = max(self.most_waiting, self.started - len(self.received))
                if self.delay:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), self.delay)
                status = self.status
                path = request_line.split(" ")[1] if " " in request_line else ""
                with self._lock:
                    self.received.append(Received(time.time(), path, headers, body))
                writer.write(
                    f"HTTP/1.1 {status} {_reason(status)}\r\nContent-Length: 0\r\n\r\n".encode()
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            writer.close()
            self._connections.discard(task)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        async def shut() -> None:
            self._closing.set()
            self._server.close()
            await asyncio.sleep(0.05)  # waiting requests get their answer
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await asyncio.sleep(0)  # the transports finish closing

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def keys(self) -> list[str]:
        with self._lock:
            return [r.key for r in self.received]

    @property
    def waiting(self) -> int:
        """Requests that arrived and are not answered yet."""
        with self._lock:
            return self.started - len(self.received)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


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
