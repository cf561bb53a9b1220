"""Kafka message values: NDJSON envelopes of events.

A message carries one event or many, one JSON object per line, all for the
same partition. A producer that sends one plain JSON event per message is
already speaking this format. Batching matters: a faust agent iterates a few
thousand messages a second, so throughput comes from events per message.

Each line is parsed on its own with orjson, so one bad line costs its own
dead letter and nothing else. (Joining the lines with commas to parse them
as one array was no faster, and unsound: lines such as ``{...},[0`` and
``0]`` made a valid array with one element per line, and an event was taken
from a line that is not JSON.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Mapping
from typing import Any, TypeVar

import orjson

from ioc.events import UTF8_BOM, DecodeError, ProcedureEvent, in_event_years
from ioc.topics import WATERMARK_HEADER
from streams.kafka import partition_for

log = logging.getLogger(__name__)

T = TypeVar("T")


def split_lines(value: bytes | None) -> list[bytes]:
    # a message without a value (a tombstone) holds no events
    return [line for line in value.split(b"\n") if line.strip()] if value else []


def decode_envelope(
    value: bytes | None, decode: Callable[[Any, bytes], T | DecodeError]
) -> tuple[list[T], list[DecodeError]]:
    """Events and errors of one message; each error carries its line's bytes."""
    lines = split_lines(value)
    good: list[T] = []
    bad: list[DecodeError] = []
    for index, line in enumerate(lines):
        obj = _parse(line)
        result = DecodeError(obj.reason, line) if isinstance(obj, _Broken) else decode(obj, line)
        if isinstance(result, DecodeError):
            bad.append(DecodeError(result.reason, line, index))
        else:
            good.append(result)
    return good, bad


def on_partition(
    decode: Callable[[Any, bytes], ProcedureEvent | DecodeError],
    part: int,
    partitions: int,
    held: Container[str],
) -> Callable[[Any, bytes], ProcedureEvent | DecodeError]:
    """``decode`` that also refuses an event whose dossier belongs on another
    partition than ``part``: a producer that does not key by dossier id would
    have two workers count one dossier. Only dossiers not ``held`` by the
    partition's store are checked (a hash costs microseconds; a dossier held
    came here already); use one per message."""
    homes: dict[str, int] = {}

    def checked(obj: Any, raw: bytes) -> ProcedureEvent | DecodeError:
        ev = decode(obj, raw)
        if isinstance(ev, DecodeError) or ev.dossier_id in held:
            return ev
        home = homes.get(ev.dossier_id)
        if home is None:
            home = homes[ev.dossier_id] = partition_for(ev.dossier_id, partitions)
        if home == part:
            return ev
        return DecodeError(
            f"dossier {ev.dossier_id!r} is on the wrong partition: it belongs to partition "
            f"{home} of {partitions} (murmur2 of dossier_id), came on {part}",
            raw,
        )

    return checked


def _parse(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if line.startswith(UTF8_BOM):
            return _Broken("line starts with a UTF-8 byte-order mark; send JSON without one")
        try:
            line.decode()
        except UnicodeDecodeError as wrong:
            return _Broken(f"not UTF-8: invalid byte at offset {wrong.start}")
        return _Broken(f"not JSON: {exc}")


class _Broken:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def watermark(value: bytes | None, headers: Mapping[str, Any] | None) -> float | None:
    """The instant of a watermark message, or None for an ordinary one. A
    watermark outside the event years is ignored: it would move a partition's
    clock where no calendar reaches."""
    if value:
        return None
    text = (headers or {}).get(WATERMARK_HEADER)
    if text is None:
        return None
    try:
        mark = float(text)
    except ValueError:
        mark = float("nan")
    if not in_event_years(mark):
        log.warning("ignoring a watermark that is no instant of the event years: %r", text[:40])
        return None
    return mark
