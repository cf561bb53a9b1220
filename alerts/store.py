"""The alert stage's PostgreSQL side: a partition's snapshot read at
assignment, and each batch written in one transaction (alert rows, history,
outbox, applied operator actions, and the partition's next offset with the
engine's state at it).

Every write is fenced by the partition's ``version``: a stage that lost the
partition in a rebalance, but still holds a batch, finds the version moved
and its transaction is rolled back (``Fenced``); it reloads, or gives the
partition up. With the partial unique index on ``alerts`` and the outbox's
key, two stages can never both write an alert or a delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from alerts.model import Alert
from alerts.records import ALERT_COLUMNS, TIME_COLUMNS, is_full


class Fenced(Exception):
    """Another stage wrote the partition since this one read it."""


@dataclass(slots=True)
class Snapshot:
    part: int
    next_offset: int
    state: dict[str, Any]
    clock: float
    version: int


@dataclass(slots=True)
class Action:
    id: int
    alert_id: str
    part: int
    action: str
    who: str
    comment: str
    at: float


@dataclass(slots=True)
class Batch:
    """What one partition's batch (or tick) writes."""

    part: int
    version: int | None  # of the snapshot the engine started from; None: none yet
    next_offset: int
    state: dict[str, Any]
    clock: float
    alerts: list[dict[str, Any]]
    history: list[tuple[str, int, float, str, dict[str, Any]]]
    deliveries: list[tuple[str, str, int, str, str, str, dict[str, Any], float]]
    applied: list[tuple[int, str]]  # (action id, outcome)


def _value(column: str, value: Any) -> Any:
    return Jsonb(value) if column == "units" else value


def _placeholder(column: str) -> str:
    return "to_timestamp(%s)" if column in TIME_COLUMNS else "%s"


def alert_statement(row: dict[str, Any]) -> tuple[str, list[Any]]:
    """An upsert for a full row; an UPDATE of the columns a partial one has.
    A comment is kept when a later change brings none."""
    if not is_full(row):
        cols = [c for c in ALERT_COLUMNS if c in row and c != "id"]
        sets = ", ".join(f"{c} = {_placeholder(c)}" for c in cols)
        params = [_value(c, row[c]) for c in cols] + [row["id"]]
        # column names from ALERT_COLUMNS only; values are parameters
        return f"UPDATE alerts SET {sets}, updated_at = now() WHERE id = %s", params  # noqa: S608
    values = ", ".join(_placeholder(c) for c in ALERT_COLUMNS)
    updates = ", ".join(
        f"{c} = coalesce(EXCLUDED.{c}, alerts.{c})" if c == "comment" else f"{c} = EXCLUDED.{c}"
        for c in ALERT_COLUMNS
        if c != "id"
    )
    names = ", ".join(ALERT_COLUMNS)
    sql = (
        f"INSERT INTO alerts ({names}, updated_at) VALUES ({values}, now()) "  # noqa: S608
        f"ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now()"
    )
    return sql, [_value(c, row.get(c)) for c in ALERT_COLUMNS]


HISTORY_SQL = (
    "INSERT INTO alert_history (alert_id, seq, at, change, detail) "
    "VALUES (%s, %s, to_timestamp(%s), %s, %s) ON CONFLICT DO NOTHING"
)
# next_attempt_at: now, for the notifier (decided_at may be in event time).
# A websocket delivery is done by this very commit: consoles read the
# committed alert (GET /api/v1/alerts at connect) and get its change on
# alerts/state; so it is stored as sent, and the notifier has none to send.
DELIVERY_SQL = (
    "INSERT INTO alert_deliveries (key, alert_id, step, recipient, channel, address, payload, "
    "decided_at, next_attempt_at, state, sent_at) VALUES (%s, %s, %s, %s, %s, %s, %s, "
    "to_timestamp(%s), now(), CASE WHEN %s THEN 'sent' ELSE 'pending' END, "
    "CASE WHEN %s THEN now() END) ON CONFLICT (key) DO NOTHING"
)


def fence_statement(batch: Batch) -> tuple[str, list[Any]]:
    """The partition row's write, which matches no row if another stage
    wrote it first."""
    state = Jsonb(batch.state)
    if batch.version is None:
        return (
            "INSERT INTO alert_partitions (part, next_offset, state, clock, version) "
            "VALUES (%s, %s, %s, %s, 1) ON CONFLICT (part) DO NOTHING",
            [batch.part, batch.next_offset, state, batch.clock],
        )
    return (
        "UPDATE alert_partitions SET next_offset = %s, state = %s, clock = %s, "
        "version = version + 1, updated_at = now() WHERE part = %s AND version = %s",
        [batch.next_offset, state, batch.clock, batch.part, batch.version],
    )


async def load(conn: AsyncConnection[Any], part: int) -> Snapshot | None:
    cur = await conn.execute(
        "SELECT next_offset, state, clock, version FROM alert_partitions WHERE part = %s", (part,)
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return Snapshot(part, int(row[0]), row[1], float(row[2]), int(row[3]))


async def write(conn: AsyncConnection[Any], batch: Batch) -> int:
    """Write one batch; returns the partition's new version. Raises
    ``Fenced`` (having written nothing) if another stage wrote first."""
    async with conn.transaction():
        sql, params = fence_statement(batch)
        cur = await conn.execute(sql, params)
        if cur.rowcount != 1:
            raise Fenced(f"alerts partition {batch.part} was written by another stage")
        async with conn.cursor() as cur:
            for row in batch.alerts:
                await cur.execute(*alert_statement(row))
            if batch.history:
                await cur.executemany(HISTORY_SQL, [(*h[:4], Jsonb(h[4])) for h in batch.history])
            if batch.deliveries:
                await cur.executemany(
                    DELIVERY_SQL,
                    [
                        (*d[:6], Jsonb(d[6]), d[7], d[4] == "websocket", d[4] == "websocket")
                        for d in batch.deliveries
                    ],
                )
            if batch.applied:
                await cur.executemany(
                    "UPDATE alert_actions SET applied_at = now(), outcome = %s "
                    "WHERE id = %s AND applied_at IS NULL",
                    [(outcome, ident) for ident, outcome in batch.applied],
                )
    return 1 if batch.version is None else batch.version + 1


async def unapplied_actions(conn: AsyncConnection[Any], parts: Sequence[int]) -> list[Action]:
    """Operators' actions on these partitions' alerts not applied yet, in order."""
    if not parts:
        return []
    cur = await conn.execute(
        "SELECT id, alert_id, part, action, who, comment, extract(epoch FROM at) "
        "FROM alert_actions WHERE applied_at IS NULL AND part = ANY(%s) ORDER BY id LIMIT 500",
        (list(parts),),
    )
    return [
        Action(int(r[0]), r[1], int(r[2]), r[3], r[4], r[5] or "", float(r[6]))
        for r in await cur.fetchall()
    ]


async def open_alerts(conn: AsyncConnection[Any]) -> list[Alert]:
    """Every partition's open and acknowledged alerts, as its engine holds
    them in the stored state (with what the alert rows lack, such as a
    dossier's due time)."""
    cur = await conn.execute("SELECT state->'engine'->'alerts' FROM alert_partitions ORDER BY part")
    return [Alert(**item) for (items,) in await cur.fetchall() for item in items or ()]


async def event_clock(conn: AsyncConnection[Any]) -> float:
    """The latest event instant any partition's engine has stored (0: none yet)."""
    cur = await conn.execute("SELECT coalesce(max(clock), 0) FROM alert_partitions")
    row = await cur.fetchone()
    return float(row[0]) if row else 0.0
