"""COPY data built in bulk, text for events and binary for counters.

``await copy.write_row(...)`` on an async cursor costs a coroutine per row
(about 20 µs). Events are formatted as COPY text lines and written in
megabyte chunks. Counter rows, which are all numbers, are laid out in
PostgreSQL's binary COPY format by numpy in one go: a few microseconds for a
thousand rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

NULL = "\\N"
# Binary COPY: signature, flags, header extension length; trailer.
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
BINARY_TRAILER = (-1).to_bytes(2, "big", signed=True)
# timestamptz travels as microseconds since 2000-01-01 00:00:00 UTC
PG_EPOCH = 946_684_800


def text(value: str) -> str:
    # str.replace scans in C; str.translate looks up every character
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


def chunks(rows: Iterable[str], size: int = 1 << 20) -> Iterable[bytes]:
    """Formatted text lines grouped into chunks of about ``size`` bytes."""
    buf: list[str] = []
    n = 0
    for row in rows:
        buf.append(row)
        n += len(row)
        if n >= size:
            yield "".join(buf).encode()
            buf, n = [], 0
    if buf:
        yield "".join(buf).encode()


def counter_rows(
    seconds: npt.NDArray[np.int64],
    scope_ids: npt.NDArray[np.int64],
    part: int,
    values: npt.NDArray[np.int64],
    nullable: int = 0,
) -> bytes:
    """Binary COPY tuples (timestamptz, int4, int2, int8 x n[, NULL x nullable])
    for ``values`` of shape [rows, n]."""
    rows, n = values.shape
    fields: list[tuple[str, str]] = [
        ("count", ">i2"),
        ("t_len", ">i4"),
        ("t", ">i8"),
        ("s_len", ">i4"),
        ("s", ">i4"),
        ("p_len", ">i4"),
        ("p", ">i2"),
    ]
    for i in range(n):
        fields += [(f"v{i}_len", ">i4"), (f"v{i}", ">i8")]
    fields += [(f"null{i}", ">i4") for i in range(nullable)]
    out = np.zeros(rows, dtype=np.dtype(fields))
    out["count"] = 3 + n + nullable
    out["t_len"], out["s_len"], out["p_len"] = 8, 4, 2
    out["t"] = (seconds - PG_EPOCH) * 1_000_000
    out["s"] = scope_ids
    out["p"] = part
    for i in range(n):
        out[f"v{i}_len"] = 8
        out[f"v{i}"] = values[:, i]
    for i in range(nullable):
        out[f"null{i}"] = -1
    return out.tobytes()
