"""One partition's procedure-event processing, free of Kafka and SQL.

``apply`` merges decoded events into the dossier store (in time order, the
clock moving with them in event-time mode), ``move`` lets time pass, and
``drain`` hands over everything the adapters must write or publish: the
events that changed something (to store raw), hourly flow increments, the
1-minute points, the KPI counters of scopes that changed, SLA transitions,
and now and then a snapshot of the store.

Durability contract: the adapter writes one drain in one database
transaction, then acknowledges the Kafka messages. After a crash the
processor is rebuilt from the last snapshot plus the raw events stored after
it; messages redelivered from Kafka merge as duplicates and change nothing.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.messages import SlaTransition
from ioc.calendar import WorkingCalendar
from ioc.clock import EventTimeClock
from ioc.events import ProcedureEvent
from ioc.registry import Registry
from streams.dossiers import FINISHED_KINDS, Deltas, DossierStore
from streams.scopes import ScopeIndex
from streams.windows import NL, Cells, ScopeWindows

_BITS = np.arange(NL, dtype=np.int64)
# dossiers per snapshot chunk (about 11 MB before compression)
SNAPSHOT_ROWS = 65_536


@dataclass(slots=True)
class Drained:
    part: int
    clock: float
    raw: list[tuple[int, ProcedureEvent]] = field(default_factory=list)  # (seq, event)
    hourly: Cells = field(default_factory=Cells.empty)
    minutely: Cells = field(default_factory=Cells.empty)
    scope_keys: list[str] = field(default_factory=list)  # names of the cells' scope indices
    # levels at the end of each minute they changed in: minute, scope index, levels
    level_minutes: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    level_scopes: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    levels: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, NL), np.int64))
    alerts: list[SlaTransition] = field(default_factory=list)
    snapshot: list[bytes] | None = None  # compressed chunks
    seq: int = 0  # the last raw sequence number this drain covers


class PartitionProcessor:
    def __init__(
        self,
        part: int,
        calendar: WorkingCalendar,
        registry: Registry,
        scopes: ScopeIndex,
        now: float,
        at_risk_share: float = 0.8,
        retention_days: float = 45,
    ) -> None:
        self.part = part
        self.scopes = scopes
        self.store = DossierStore(calendar, registry, scopes, at_risk_share)
        self.windows = ScopeWindows(scopes, now)
        self.deltas = Deltas()
        self.now = now
        self._hour_end = now
        self.retention = retention_days * 86400
        self.seq = 0
        self._raw: list[ProcedureEvent] = []
        self._alerts: list[SlaTransition] = []
        self.events_applied = 0
        self._edge = np.inf  # the oldest edge time of the changes not yet in the windows

    # -- input ---------------------------------------------------------------------

    def apply(
        self,
        events: Sequence[ProcedureEvent],
        now: float,
        clock: EventTimeClock | None = None,
        edge: float | None = None,
    ) -> int:
        """Merge events in time order, then let time pass up to ``now``.
        Before each event the time moves to that event's (never past
        ``now``; with an event-time ``clock``, to the clock's), so no dossier
        is judged at a moment whose earlier events are still to be applied:
        one finished on time is never reported overdue first, however late
        the events come. ``edge`` is when they reached the edge (for the
        updates' latency). Returns how many changed something."""
        if edge is not None:
            self._edge = min(self._edge, edge)
        changed = 0
        store = self.store
        for ev in sorted(events, key=_ts):
            if clock is not None:
                clock.observe(ev.ts)
                now = clock.now()
            at = now if clock is not None else min(now, ev.ts)
            if at > self.now:
                self.move(at)
            if store.apply(ev, self.now, self.deltas):
                self._raw.append(ev)
                changed += 1
        self.events_applied += len(events)
        if now > self.now:
            self.move(now)
        return changed

    def move(self, now: float) -> None:
        """Let time pass: dossiers cross into at-risk and overdue, windows roll."""
        if now < self.now:
            return
        self.now = now
        if self.store.wheel.has_due(now):
            self.store.advance(now, self.deltas)
        if now >= self._hour_end:  # windows change only at hour boundaries
            if self.windows.roll(now):
                self._collect()  # a new day: today's window restarts from the flows so far
            self._hour_end = (now // 3600 + 1) * 3600

    def _collect(self) -> None:
        self.store.collect_levels(self.deltas)
        self.store.collect_flows(self.deltas)
        self._apply_deltas()

    def _apply_deltas(self) -> None:
        if self.deltas:
            edge = None if self._edge == np.inf else float(self._edge)
            self.windows.apply(self.deltas, edge)
            self._edge = np.inf
            self._alerts.extend(self.deltas.alerts)
            self.deltas = Deltas()

    # -- output ---------------------------------------------------------------------

    def drain(self, snapshot: bool = False, keep_raw: bool = True) -> Drained:
        """Everything to commit since the last drain. ``keep_raw=False`` when
        the raw events are stored already (recomputation): they are not
        handed over and the sequence number does not move."""
        self._collect()
        raw, self._raw = (self._raw, []) if keep_raw else ([], [])
        first = self.seq + 1
        self.seq += len(raw)
        hourly, minutely = self.windows.take_flows()
        level_minutes, level_scopes, levels = self.windows.take_level_samples()
        out = Drained(
            part=self.part,
            clock=self.now,
            raw=list(zip(range(first, self.seq + 1), raw, strict=True)),
            hourly=hourly,
            minutely=minutely,
            scope_keys=list(self.scopes.keys),
            level_minutes=level_minutes,
            level_scopes=level_scopes,
            levels=levels,
            alerts=self._alerts,
            seq=self.seq,
        )
        self._alerts = []
        if snapshot:
            self.evict_finished()
            out.snapshot = self.snapshot()
        return out

    def updates(
        self, now: float = 0.0, min_gap: float = 0.0, edges: dict[str, float] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Counters of the scopes whose values changed since they were last
        handed over; a scope handed over less than ``min_gap`` s before ``now``
        (a monotonic clock) waits for a later call (``ScopeWindows.take_dirty``).
        ``edges``, when given, receives the edge time of each scope's oldest
        change, where known."""
        self._collect()
        keys = self.scopes.keys
        dirty, oldest = self.windows.take_dirty(now, min_gap)
        if edges is not None:
            edges.update(
                (keys[s], float(t))
                for s, t in zip(dirty.tolist(), oldest.tolist(), strict=True)
                if t == t  # not NaN
            )
        return {keys[s]: self.windows.counters(s) for s in dirty.tolist()}

    def unpublished(self, keys: Iterable[str]) -> None:
        """Scopes ``updates`` handed over that did not reach the broker: a
        later call hands them over again."""
        for key in keys:
            s = self.scopes.get(key)
            if s is not None:
                self.windows.dirty[s] = True

    def updates_waiting(self) -> bool:
        """Whether some scope changed and was held back by ``min_gap``."""
        return bool(self.windows.dirty[: len(self.scopes)].any())

    def all_counters(self) -> dict[str, dict[str, Any]]:
        self._collect()
        return {key: self.windows.counters(s) for s, key in enumerate(self.scopes.keys)}

    # -- memory and recovery -----------------------------------------------------------

    def evict_finished(self) -> int:
        """Forget dossiers closed longer ago than the retention period."""
        store = self.store
        n = len(store.ids)
        end = store.c.end[:n]
        old = np.nonzero((end > 0) & (end < self.now - self.retention))[0]
        for row in old.tolist():
            store.evict(row)
        store.forgotten.prune(self.now)
        return len(old)

    def snapshot(self) -> list[bytes]:
        """The store as compressed chunks of at most SNAPSHOT_ROWS dossiers:
        their facts, ids and supplement instants; the first chunk also holds
        the attributes of each combo (combo ids are process-local). Chunks
        keep the memory a snapshot needs bounded."""
        store = self.store
        rows = store.live_rows()
        chunks = []
        for start in range(0, max(len(rows), 1), SNAPSHOT_ROWS):
            block = rows[start : start + SNAPSHOT_ROWS]
            ids = [store.ids[r] or "" for r in block.tolist()]
            req_rows, req_t = _flatten(store.requests, block)
            sup_rows, sup_t = _flatten(store.supplied, block)
            combos = self.scopes.combo_attributes if start == 0 else []
            forgotten = store.forgotten.arrays() if start == 0 else _NONE_FORGOTTEN
            buf = io.BytesIO()
            np.savez(
                buf,
                facts=store.facts[block],
                ids=np.array("\x1f".join(ids).encode()),
                req_rows=req_rows,
                req_t=req_t,
                sup_rows=sup_rows,
                sup_t=sup_t,
                combos=np.array(json.dumps(combos).encode()),
                forgotten_keys=forgotten[0],
                forgotten_closed=forgotten[1],
            )
            chunks.append(zlib.compress(buf.getvalue(), 1))
        return chunks

    def restore(self, chunks: Sequence[bytes], seq: int, later: Iterable[ProcedureEvent]) -> None:
        """Rebuild from a snapshot plus the raw events stored after it.

        The counters already include those events (the database holds them),
        so the replayed changes feed only the levels, recomputed at the end.
        """
        store = self.store
        remap = np.array([-1], dtype=np.int32)
        for i, chunk in enumerate(chunks):
            data = np.load(io.BytesIO(zlib.decompress(chunk)))
            if i == 0:
                table = json.loads(bytes(data["combos"]).decode())
                remap = np.array(
                    [self.scopes.combo(*attrs) if attrs else -1 for attrs in table] or [-1],
                    dtype=np.int32,
                )
            if "forgotten_keys" in data.files:
                store.forgotten.load(data["forgotten_keys"], data["forgotten_closed"])
            facts = data["facts"].copy()
            if not len(facts):
                continue
            ids = bytes(data["ids"]).decode().split("\x1f")
            known = facts["combo"] >= 0
            facts["combo"][known] = remap[facts["combo"][known]]
            store.load_rows(ids, facts)
            _unflatten(store.requests, data["req_rows"], data["req_t"], ids, store.rows)
            _unflatten(store.supplied, data["sup_rows"], data["sup_t"], ids, store.rows)
        self.seq = seq
        scratch = Deltas()
        counted = store.after_eviction  # a replay is not news
        for ev in later:
            store.apply(ev, self.now, scratch)
        store.after_eviction = counted
        n = len(store.ids)
        for row in np.nonzero(np.isfinite(store.c.next_at[:n]))[0].tolist():
            store.wheel.push(row, float(store.c.next_at[row]))
        store.advance(self.now, scratch)
        # the stored counters already hold these changes; levels are recounted
        store.collect_levels(Deltas())
        store.collect_flows(Deltas())
        self._recount_levels()

    def restore_counters(
        self, scopes: list[str], hours: npt.NDArray[np.int64], values: npt.NDArray[np.int64]
    ) -> None:
        """Fill the windows from stored hourly counters."""
        index = np.array([self.scopes.intern(s) for s in scopes], dtype=np.int32)
        self.windows.load_hourly(index, hours, values)

    def _recount_levels(self) -> None:
        store, windows = self.store, self.windows
        n = len(store.ids)
        live = store.c.combo[:n] >= 0
        combos = store.c.combo[:n][live]
        masks = store.c.mask[:n][live].astype(np.int64)
        bits = (masks[:, None] >> _BITS) & 1
        windows._grow()
        windows.levels[:] = 0
        entry, scope = self.scopes.expand(combos)
        np.add.at(windows.levels, scope, bits[entry])
        windows.dirty[: len(self.scopes)] = True

    def stats(self) -> dict[str, int]:
        store = self.store
        n = len(store.ids)
        kinds = store.c.end_kind[:n]
        received = store.c.received[:n] > 0
        # free rows are all zeros, so they count as neither received nor closed
        return {
            "dossiers": len(store),
            "open": int(np.count_nonzero(received & (kinds == 0))),
            "finished": int(np.count_nonzero(np.isin(kinds, FINISHED_KINDS))),
            "awaiting_receipt": len(store) - int(np.count_nonzero(received)),
            "duplicates": store.duplicates,
            "after_eviction": store.after_eviction,
            "events_applied": self.events_applied,
        }


_NONE_FORGOTTEN = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint32))


def _ts(ev: ProcedureEvent) -> float:
    return ev.ts


def _flatten(
    table: dict[int, list[float]], rows: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    position = {int(r): i for i, r in enumerate(rows.tolist())}
    idx: list[int] = []
    times: list[float] = []
    for row, instants in table.items():
        if row in position:
            idx.extend([position[row]] * len(instants))
            times.extend(instants)
    return np.array(idx, dtype=np.int64), np.array(times, dtype=np.float64)


def _unflatten(
    table: dict[int, list[float]],
    idx: npt.NDArray[np.int64],
    times: npt.NDArray[np.float64],
    ids: list[str],
    rows: dict[str, int],
) -> None:
    for i, t in zip(idx.tolist(), times.tolist(), strict=True):
        table.setdefault(rows[ids[i]], []).append(t)
    for instants in table.values():
        instants.sort()
