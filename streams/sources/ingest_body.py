"""The body of an ingest request, split and validated: pure functions,
thread-safe (large bodies are validated in a worker thread), no HTTP.

``body_format`` tells JSON from NDJSON by content type; ``too_many_containers``
refuses a body whose parse would hold the GIL too long; ``sort_body`` splits
a body into items, validates each with the event decoder and keeps the good
ones keyed for Kafka, and the first ``MAX_REPORTED`` reasons of the others.
An item that cannot be re-encoded on one line, or nests deeper than
``ioc.events.MAX_NESTING``, is one rejected item like any other.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ioc.events import MAX_NESTING, UTF8_BOM, DecodeError, nesting

MAX_REPORTED = 100  # rejected items named in an answer; a junk body would name millions
# JSON arrays and objects per body. orjson holds the GIL for a whole body, so
# millions of tiny containers within the byte limit ([[],[],...]: 0.5 s for
# 5 MB) stopped the event loop; an event needs one or two.
MAX_CONTAINERS = 100_000
# One event, as it goes on to Kafka: real ones are under a kilobyte. Far
# under the broker's message limit, so an accepted item always fits in a
# message (one too large for it was refused by Kafka, after its neighbours
# had gone out, and the client told to retry what could never pass).
MAX_EVENT_BYTES = 64 * 1024
JSON_TYPE = "application/json"
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
# Why items are rejected, as counted in ioc_ingest_rejected_total.
REASONS = ("not_json", "not_utf8", "too_deep", "too_large", "invalid")
TOO_DEEP = f"event nests arrays or objects deeper than {MAX_NESTING} levels"


class Unsupported(ValueError):
    """A body this edge does not read (HTTP 415)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """An item refused before decoding, with its reason class."""

    reason: str
    why: str


Item = tuple[Any, bytes] | Refused


def body_format(content_type: str | None, encoding: str | None) -> bool:
    """True for NDJSON, False for JSON; ``Unsupported`` for anything else."""
    if encoding and encoding.strip().lower() != "identity":
        raise Unsupported(f"Content-Encoding {encoding[:40]!r} is not supported")
    if content_type is None:
        return False  # a client that names no type: JSON, or NDJSON when it has lines
    media, *params = (p.strip().lower() for p in content_type.split(";"))
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            raise Unsupported("bodies are read as UTF-8 only")
    if media == JSON_TYPE:
        return False
    if media in NDJSON_TYPES:
        return True
    raise Unsupported(
        f"Content-Type must be {JSON_TYPE} (one event or an array) or {NDJSON_TYPES[0]} "
        f"(one event per line); got {content_type[:60]!r}",
    )


def too_many_containers(body: bytes) -> str | None:
    """Why a body holds too many arrays and objects to be parsed, or None.
    Counts the bytes ``[`` and ``{`` (memchr speed), inside strings too: the
    budget leaves room for that."""
    n = body.count(b"[") + body.count(b"{")
    if n <= MAX_CONTAINERS:
        return None
    return (
        f"body holds {n} '[' and '{{', over {MAX_CONTAINERS} JSON arrays and objects; "
        "split the batch"
    )


def _one_line(value: Any) -> Item:
    """``value`` with its bytes on one line (the worker splits envelopes on
    newlines), or why it cannot go on."""
    if nesting(value) > MAX_NESTING:
        return Refused(TOO_DEEP, "too_deep")
    try:
        return value, orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        return Refused(f"cannot be re-encoded: {exc}", "not_json")


def _not_json(data: bytes, exc: orjson.JSONDecodeError) -> Refused:
    try:
        data.decode()
    except UnicodeDecodeError as bad:
        return Refused(f"not UTF-8: invalid byte at offset {bad.start}", "not_utf8")
    return Refused(f"not JSON: {exc}", "not_json")


def split_body(body: bytes, ndjson: bool) -> Iterator[Item] | str:
    """The items of a body, one at a time, or an error text for the body as
    a whole. Lines are cut one at a time, not into a list: a body of
    millions of lines would hold the GIL while splitting and fill the heap
    (and the garbage collector's pauses) with objects at once."""
    body = body.removeprefix(UTF8_BOM)  # some Windows clients write one
    if not body.strip():
        return "empty body"
    if not ndjson:
        try:
            # orjson, as in the worker: what the edge accepts, the worker can read
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if b"\n" not in body.strip():
                return f"body is {_not_json(body, exc).reason}"
        else:
            values = value if isinstance(value, list) else [value]
            return (_one_line(v) for v in values)
        # several lines that are not one JSON value: try them as NDJSON
    return _lines(body)


def _lines(body: bytes) -> Iterator[Item]:
    start, end = 0, len(body)
    while start < end:
        stop = body.find(b"\n", start)
        if stop < 0:
            stop = end
        line = body[start:stop].strip()
        start = stop + 1
        if not line:
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield _not_json(line, exc)
            continue
        yield Refused(TOO_DEEP, "too_deep") if nesting(value) > MAX_NESTING else (value, line)


@dataclass(slots=True)
class Outcome:
    good: list[tuple[str, bytes]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_REPORTED
    rejected: int = 0
    why: Tally[str] = field(default_factory=Tally)

    @property
    def answer(self) -> dict[str, Any]:
        return {
            "accepted": len(self.good),
            "rejected": self.rejected,
            "errors": self.errors,
            "errors_truncated": self.rejected > len(self.errors),
        }


def sort_body(
    body: bytes,
    ndjson: bool,
    decode: Callable[[Any, bytes], Any],
    key_of: Callable[[Any], str],
) -> Outcome | str:
    """Split and validate a body: the good items keyed for Kafka, and the
    rejected ones; or an error text for the body as a whole."""
    items = split_body(body, ndjson)
    if isinstance(items, str):
        return items
    out = Outcome()
    for index, item in enumerate(items):
        if isinstance(item, Refused):
            reason, why = item.reason, item.why
        elif len(item[1]) > MAX_EVENT_BYTES:
            reason = f"event is {len(item[1])} bytes, over the {MAX_EVENT_BYTES} bytes of one event"
            why = "too_large"
        else:
            result = decode(*item)
            if not isinstance(result, DecodeError):
                out.good.append((key_of(result), item[1]))
                continue
            reason, why = result.reason, "invalid"
        out.rejected += 1
        out.why[why] += 1
        if len(out.errors) < MAX_REPORTED:
            out.errors.append({"index": index, "reason": reason})
    return out
