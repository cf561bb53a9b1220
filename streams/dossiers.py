"""Dossier state: facts per dossier, merged so that order and repeats do not
matter, and evaluated through the SLA timeline.

Each dossier is a row of one numpy structured array (about 200 bytes), so a
million open dossiers fit in a few hundred megabytes. Every fact is an
instant, merged commutatively: the earliest receipt wins (its attributes
with it; of two at one instant, the one whose event id hashes lower),
single steps keep their earliest instant, the latest rating wins,
supplement requests and receipts are sets. Applying an event twice, or
events in any order, gives the same row; an event that changes nothing is a
duplicate.

Only events that change an SLA input (receipt, supplements, apology, the
closing instant) rebuild the dossier's timeline; the others set a fact and
are done. A row's state before its first change in a batch is kept, and
``collect`` turns the difference between before and after into counter
deltas with numpy (``ioc.kpis.flow_entries``), so the counters always equal
the sum over dossiers of their current contribution.

The module is long on purpose: the row layout, the merge rules and the
evaluation all read and write the same columns, and keeping them together
keeps each rule next to the column it touches.
"""

from __future__ import annotations

import heapq
import logging
import math
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from alerts.messages import SlaTransition
from ioc.calendar import WorkingCalendar
from ioc.events import ONLINE_CHANNELS, ProcedureEvent
from ioc.kpis import FlowColumns, flow_entries
from ioc.registry import Registry
from ioc.sla import (
    AT_RISK,
    B_AT_RISK,
    B_OVERDUE,
    EARLY,
    INF,
    LATE,
    ON_TIME,
    OVERDUE,
    REJECTED,
    WITHDRAWN,
    Timeline,
    pair_pauses,
)
from streams.forgotten import ForgottenDossiers, id_hash
from streams.scopes import ScopeIndex

log = logging.getLogger(__name__)

FACTS_DTYPE = np.dtype(
    [
        ("received", "f8"),
        ("accepted", "f8"),
        ("rejected", "f8"),
        ("in_progress", "f8"),
        ("obligation", "f8"),
        ("paid", "f8"),
        ("withdrawn", "f8"),
        ("stopped", "f8"),
        ("processed", "f8"),
        ("returned", "f8"),
        ("result_digitized", "f8"),
        ("dossier_digitized", "f8"),
        ("apology", "f8"),
        ("new_due", "f8"),
        ("rated", "f8"),
        ("start", "f8"),
        # a stable hash of the receipt's event id: of two receipts with the
        # same instant, the smaller one wins, whatever their order
        ("receipt_key", "u8"),
        ("allotted", "f4"),
        ("combo", "i4"),
        ("channel", "i1"),
        ("fee", "?"),
        ("paper", "?"),
        ("paid_online", "?"),
        ("score", "i1"),
        ("complaint", "?"),
        # derived by evaluation
        ("end", "f8"),
        ("end_kind", "i1"),
        ("klass", "i1"),
        ("proc_s", "f4"),
        ("mask", "i4"),
        ("next_at", "f8"),
        ("anomalies", "u2"),
    ]
)
# Event type -> the fact column it sets (earliest instant wins), and whether
# that fact is an input of the SLA timeline.
STEP_FACTS: dict[str, tuple[str, bool]] = {
    "accepted": ("accepted", False),
    "in_progress": ("in_progress", False),
    "financial_obligation_requested": ("obligation", False),
    "result_digitized": ("result_digitized", False),
    "dossier_digitized": ("dossier_digitized", False),
    "rejected_at_intake": ("rejected", True),
    "withdrawn": ("withdrawn", True),
    "stopped": ("stopped", True),
    "processed": ("processed", True),
    "result_returned": ("returned", True),
}
# Steps whose order matters but that cannot break it alone when they come
# after the receipt and before any closing.
_PLAIN_STEPS = frozenset(("accepted", "in_progress", "financial_obligation_requested", "paid"))
# Steps that change no counter: neither a flow nor a level bit.
_NO_COUNTERS = frozenset(("accepted", "in_progress", "financial_obligation_requested"))
# Event types that can break the order of receipt, progress and closing.
_ORDER_KINDS = frozenset(
    (
        "received",
        "accepted",
        "in_progress",
        "financial_obligation_requested",
        "paid",
        "processed",
        "result_returned",
        "rejected_at_intake",
        "withdrawn",
        "stopped",
    )
)
# Columns that flows depend on: a row whose columns are unchanged has
# unchanged flows.
FLOW_FIELDS = (
    "received",
    "channel",
    "dossier_digitized",
    "end",
    "end_kind",
    "apology",
    "klass",
    "result_digitized",
    "fee",
    "paid_online",
    "score",
    "complaint",
    "proc_s",
    "combo",
)

CHANNEL_CODES = {"online": 1, "vneid": 2, "postal": 3, "in_person": 4}
CHANNEL_NAMES = {v: k for k, v in CHANNEL_CODES.items()}
ONLINE_CODES = np.array(sorted(CHANNEL_CODES[c] for c in ONLINE_CHANNELS), dtype=np.int8)
END_OPEN, END_FINISHED, END_REJECTED, END_WITHDRAWN, END_STOPPED = 0, 1, 2, 3, 4
# Processed or result returned gives a result; stopped finishes without one.
FINISHED_KINDS = (END_FINISHED, END_STOPPED)
CLASS_CODES = {"": 0, EARLY: 1, ON_TIME: 2, LATE: 3}

# Anomalies: lifecycle steps that do not fit, flagged once per dossier
# whatever the order the events came in.
ANOMALIES = (
    "received_twice",
    "step_repeated",
    "before_receipt",
    "after_close",
    "stray_supplement",
    "returned_before_processed",
)
_A = {name: 1 << i for i, name in enumerate(ANOMALIES)}

# merge results
UNCHANGED, FACT, SLA_INPUT = 0, 1, 2

I32 = npt.NDArray[np.int32]


class _Columns:
    """One attribute per column of the facts array."""

    def __init__(self, facts: npt.NDArray[Any]) -> None:
        for name in FACTS_DTYPE.names or ():
            setattr(self, name, facts[name])

    def __getattr__(self, name: str) -> Any:  # for type checkers only
        raise AttributeError(name)


@dataclass(slots=True)
class Deltas:
    """Counter changes, as numpy chunks: flows (combo, flow, instant,
    amount) and level bits (minute, combo, bits before, bits after)."""

    flows: list[
        tuple[I32, npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]
    ] = field(default_factory=list)
    # (minute of the change, combo, bits before, bits after)
    levels: list[
        tuple[npt.NDArray[np.int64], I32, npt.NDArray[np.int64], npt.NDArray[np.int64]]
    ] = field(default_factory=list)
    alerts: list[SlaTransition] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.flows or self.levels or self.alerts)


class MinuteWheel:
    """Rows to re-evaluate, bucketed by the minute of their next change.

    Entries are never removed: a row re-evaluated earlier leaves a stale
    entry, skipped when its bucket comes due because the row's ``next_at``
    no longer falls there. Four bytes per entry.
    """

    def __init__(self) -> None:
        self._buckets: dict[int, array[int]] = {}
        self._minutes: list[int] = []  # heap of bucket keys

    def push(self, row: int, t: float) -> None:
        if t == INF:
            return
        minute = int(t // 60)
        bucket = self._buckets.get(minute)
        if bucket is None:
            bucket = self._buckets[minute] = array("i")
            heapq.heappush(self._minutes, minute)
        bucket.append(row)

    def has_due(self, now: float) -> bool:
        return bool(self._minutes) and self._minutes[0] * 60 <= now

    def pop_due(self, now: float, next_at: npt.NDArray[np.float64]) -> list[int]:
        """Rows whose ``next_at`` is at or before ``now``, each once."""
        due: set[int] = set()
        while self._minutes and self._minutes[0] * 60 <= now:
            minute = heapq.heappop(self._minutes)
            later = array("i")
            for row in self._buckets.pop(minute):
                t = next_at[row]
                if t == INF or t // 60 != minute:
                    continue  # stale: the row moved to another minute, or to never
                if t <= now:
                    due.add(row)
                else:
                    later.append(row)
            if later:  # the rest of this minute
                self._buckets[minute] = later
                heapq.heappush(self._minutes, minute)
                break
        return sorted(due)


class DossierStore:
    """All dossiers of one partition."""

    def __init__(
        self,
        calendar: WorkingCalendar,
        registry: Registry,
        scopes: ScopeIndex,
        at_risk_share: float = 0.8,
        capacity: int = 1024,
    ) -> None:
        self.cal = calendar
        self.registry = registry
        self.scopes = scopes
        self.share = at_risk_share
        self.facts = _empty(capacity)
        self.rows: dict[str, int] = {}
        self.ids: list[str | None] = []
        self.free: list[int] = []
        self.requests: dict[int, list[float]] = {}
        self.supplied: dict[int, list[float]] = {}
        self.duplicates = 0
        self.forgotten = ForgottenDossiers()
        # events for dossiers evicted already: stored raw, changing nothing live
        self.after_eviction = 0
        self.anomaly_counts: Counter[str] = Counter()
        self.wheel = MinuteWheel()
        # rows changed since the last ``collect_flows``, with their state before
        self._touched: dict[int, int] = {}
        self._before = _empty(256)
        # level-bit changes since the last ``collect_levels``: minute, combo, old, new
        self._level_log: tuple[array[int], array[int], array[int], array[int]] = (
            array("q"),
            array("i"),
            array("i"),
            array("i"),
        )
        self._views()

    def _views(self) -> None:
        # Column views: ``c.received[row]`` is five times faster than a field
        # of ``facts[row]``.
        self.c = _Columns(self.facts)

    def __len__(self) -> int:
        return len(self.rows)

    # -- rows -------------------------------------------------------------------

    def _row(self, dossier_id: str) -> int:
        row = self.rows.get(dossier_id)
        if row is not None:
            return row
        if self.free:
            row = self.free.pop()
            self.ids[row] = dossier_id
        else:
            row = len(self.ids)
            if row >= len(self.facts):
                grown = _empty(len(self.facts) * 2)
                grown[: len(self.facts)] = self.facts
                self.facts = grown
                self._views()
            self.ids.append(dossier_id)
        self.rows[dossier_id] = row
        return row

    def load_rows(self, ids: list[str], facts: npt.NDArray[Any]) -> None:
        """Add rows from a snapshot (the ids must be new to this store)."""
        first = len(self.ids)
        need = first + len(ids)
        if need > len(self.facts):
            grown = _empty(max(need, 2 * len(self.facts)))
            grown[:first] = self.facts[:first]
            self.facts = grown
        self.facts[first:need] = facts
        self.ids.extend(ids)
        self.rows.update((dossier_id, first + i) for i, dossier_id in enumerate(ids))
        self._views()

    def row_of(self, dossier_id: str) -> int | None:
        return self.rows.get(dossier_id)

    def evict(self, row: int) -> None:
        """Forget a closed dossier (its counters stay as they are)."""
        dossier_id = self.ids[row]
        if dossier_id is None:
            return
        self.forgotten.add(dossier_id, float(self.c.end[row]))
        del self.rows[dossier_id]
        self.ids[row] = None
        self.requests.pop(row, None)
        self.supplied.pop(row, None)
        self.facts[row] = _empty(1)[0]
        self.free.append(row)

    def live_rows(self) -> npt.NDArray[np.intp]:
        alive = np.fromiter((i is not None for i in self.ids), dtype=bool, count=len(self.ids))
        return np.nonzero(alive)[0]

    def _touch(self, row: int) -> None:
        if row not in self._touched:
            k = len(self._touched)
            if k >= len(self._before):
                grown = _empty(len(self._before) * 2)
                grown[:k] = self._before[:k]
                self._before = grown
            self._before[k] = self.facts[row]
            self._touched[row] = k

    # -- merging ----------------------------------------------------------------

    def apply(self, ev: ProcedureEvent, now: float, out: Deltas) -> bool:
        """Merge one event. Returns False when it changed nothing."""
        if ev.dossier_id not in self.rows and self.forgotten and ev.dossier_id in self.forgotten:
            # Not a new dossier, and a live row would count a second receipt.
            # A late fact is kept with the raw events (recompute counts it);
            # a receipt sent again is stored already.
            self.after_eviction += 1
            return ev.type != "received"
        row = self._row(ev.dossier_id)
        if ev.type not in _NO_COUNTERS:
            self._touch(row)
        c = self.c
        old_combo = int(c.combo[row])
        result = self._merge(row, ev)
        if result == UNCHANGED:
            self.duplicates += 1
            return False
        if old_combo >= 0 and old_combo != c.combo[row] and c.mask[row]:
            # an earlier receipt put the dossier under other scopes: leave the old
            self._log_level(now, old_combo, int(c.mask[row]), 0)
            c.mask[row] = 0
        self._recheck(row, ev.type, ev.ts)
        if result == SLA_INPUT:
            self._evaluate(row, now, out, min(ev.ts, now))
        return True

    def _merge(self, row: int, ev: ProcedureEvent) -> int:
        c, kind, ts = self.c, ev.type, ev.ts
        step = STEP_FACTS.get(kind)
        if step is not None:
            column, sla = step
            values = getattr(c, column)
            old = values[row]
            if old and ts >= old:
                if ts > old:
                    self._flag(row, "step_repeated")
                return UNCHANGED
            if old:
                self._flag(row, "step_repeated")
            values[row] = ts
            if sla and c.received[row]:
                end, kind_code = self.end_of(row)
                if end != (c.end[row] or INF) or kind_code != c.end_kind[row]:
                    return SLA_INPUT
            return FACT
        if kind == "received":
            old = c.received[row]
            key = id_hash(ev.event_id)
            if old and (ts > old or (ts == old and key >= c.receipt_key[row])):
                if ts > old or key != c.receipt_key[row]:
                    self._flag(row, "received_twice")
                return UNCHANGED
            if old:
                self._flag(row, "received_twice")
            self._set_receipt(row, ev)
            c.receipt_key[row] = key
            return SLA_INPUT
        if kind == "supplement_requested" or kind == "supplement_received":
            table = self.requests if kind == "supplement_requested" else self.supplied
            instants = table.setdefault(row, [])
            if ts in instants:
                return UNCHANGED
            instants.append(ts)
            instants.sort()
            return SLA_INPUT if c.received[row] else FACT
        if kind == "paid":
            old = c.paid[row]
            if old == ts and ev.online and not c.paid_online[row]:
                c.paid_online[row] = True
                return FACT
            if old and ts >= old:
                return UNCHANGED
            c.paid[row] = ts
            c.paid_online[row] = ev.online
            return FACT
        if kind == "apology_issued":
            old = c.apology[row]
            new_due = ev.new_due or 0.0
            # the earliest letter wins; of two at one instant, the later new due date
            if old and (ts > old or (ts == old and new_due <= c.new_due[row])):
                return UNCHANGED
            c.apology[row] = ts
            c.new_due[row] = new_due
            return SLA_INPUT if c.received[row] else FACT
        if kind == "rated":
            # the latest rating wins; ties broken by (score, complaint)
            new = (ts, ev.score or 0, ev.complaint)
            if new <= (float(c.rated[row]), int(c.score[row]), bool(c.complaint[row])):
                return UNCHANGED
            c.rated[row] = ts
            c.score[row] = ev.score or 0
            c.complaint[row] = ev.complaint
            return FACT
        return UNCHANGED

    def _set_receipt(self, row: int, ev: ProcedureEvent) -> None:
        r = ev.receipt
        assert r is not None
        c = self.c
        c.received[row] = ev.ts
        self.scopes.check_province(r.province)
        c.combo[row] = self.scopes.combo(r.commune, r.agency, r.centre, r.procedure_code, r.field)
        c.channel[row] = CHANNEL_CODES[r.channel]
        c.fee[row] = r.fee_required
        c.paper[row] = r.paper_result
        if r.allotted_days is not None:
            c.allotted[row] = r.allotted_days * self.cal.day_seconds
        else:
            c.allotted[row] = (r.allotted_hours or 0.0) * 3600
        cutoff = self.registry.cutoff_seconds(r.procedure_code)
        c.start[row] = self.cal.start_instant(ev.ts, cutoff)

    # -- anomalies -----------------------------------------------------------------
    # Two kinds: "seen" ones (a second receipt, a repeated step) are set when
    # the second event arrives, whichever it is; the others are recomputed
    # from the facts after every change, set or cleared, so the final flags
    # do not depend on the order events came in.

    def _flag(self, row: int, anomaly: str, on: bool = True) -> None:
        bit = _A[anomaly]
        flags = self.c.anomalies
        had = bool(flags[row] & bit)
        if on and not had:
            flags[row] |= bit
            self.anomaly_counts[anomaly] += 1
            log.debug("dossier %s: %s", self.ids[row], anomaly.replace("_", " "))
        elif had and not on:
            flags[row] &= 0xFFFF ^ bit
            self.anomaly_counts[anomaly] -= 1

    def _recheck(self, row: int, kind: str, ts: float) -> None:
        """Recompute the anomalies an event of ``kind`` can change."""
        c = self.c
        if kind in _ORDER_KINDS:
            received = c.received[row]
            if (
                kind in _PLAIN_STEPS
                and received
                and ts >= received
                and not c.anomalies[row]
                and not (c.rejected[row] or c.withdrawn[row] or c.stopped[row])
            ):
                return  # a step in order on a dossier with nothing flagged
            progress = [
                c.accepted[row],
                c.in_progress[row],
                c.obligation[row],
                c.paid[row],
                c.processed[row],
                c.returned[row],
            ]
            closed = [t for t in (c.rejected[row], c.withdrawn[row], c.stopped[row]) if t]
            early = bool(received) and any(0 < t < received for t in progress + closed)
            self._flag(row, "before_receipt", early)
            self._flag(row, "after_close", bool(closed) and max(progress) > min(closed))
            if kind in ("processed", "result_returned"):
                p, r = c.processed[row], c.returned[row]
                self._flag(row, "returned_before_processed", bool(p and r and r < p))
        elif kind in ("supplement_requested", "supplement_received"):
            stray = pair_pauses(self.requests.get(row, []), self.supplied.get(row, []))[1]
            self._flag(row, "stray_supplement", stray > 0)

    # -- evaluation -------------------------------------------------------------

    def end_of(self, row: int) -> tuple[float, int]:
        """The first closing instant and its kind."""
        c = self.c
        best, kind = INF, END_OPEN
        for values, k in (
            (c.processed, END_FINISHED),
            (c.returned, END_FINISHED),
            (c.stopped, END_STOPPED),
            (c.rejected, END_REJECTED),
            (c.withdrawn, END_WITHDRAWN),
        ):
            t = values[row]
            if t and t < best:
                best, kind = float(t), k
        return best, kind

    def timeline(self, row: int, end: float | None = None) -> Timeline | None:
        c = self.c
        received = c.received[row]
        if not received:
            return None
        return Timeline(
            self.cal,
            float(received),
            float(c.start[row]),
            float(c.allotted[row]),
            self.requests.get(row, []),
            self.supplied.get(row, []),
            self.end_of(row)[0] if end is None else end,
            float(c.apology[row]) or INF,
            self.share,
        )

    def _evaluate(self, row: int, now: float, out: Deltas, cause: float | None = None) -> None:
        """Re-judge a dossier after a change of its facts; ``cause`` is when
        the change happened (the event's instant): a dossier it takes out of
        at-risk or overdue is ``cleared`` at that instant."""
        c = self.c
        end, kind = self.end_of(row)
        tl = self.timeline(row, end)
        assert tl is not None
        c.end[row] = 0.0 if end == INF else end
        c.end_kind[row] = kind
        if kind in FINISHED_KINDS:
            c.klass[row] = CLASS_CODES[tl.finish_class()]
            c.proc_s[row] = tl.consumed(end)
        else:
            c.klass[row] = 0
            c.proc_s[row] = 0.0
        self._set_mask(row, tl, now, out, cause)

    def _log_level(self, now: float, combo: int, old: int, new: int) -> None:
        minute, combos, olds, news = self._level_log
        minute.append(int(now // 60))
        combos.append(combo)
        olds.append(old)
        news.append(new)

    def _set_mask(
        self, row: int, tl: Timeline, now: float, out: Deltas, cause: float | None = None
    ) -> None:
        c = self.c
        old = int(c.mask[row])
        mask, nxt = tl.mask_and_next(now)
        if mask != old:
            self._log_level(now, int(c.combo[row]), old, mask)
        c.mask[row] = mask
        c.next_at[row] = nxt
        self.wheel.push(row, nxt)
        if (old ^ mask) & (B_AT_RISK | B_OVERDUE):
            self._alert(row, tl, old, mask, now, out, now if cause is None else cause)

    def advance(self, now: float, out: Deltas) -> int:
        """Re-evaluate the dossiers whose level bits may have changed by
        ``now``, each change at its own instant (an at-risk instant, a due
        time), however late it is noticed: the levels at an instant do not
        depend on when the worker looked. Returns how many were looked at."""
        if not self.wheel.has_due(now):
            return 0
        rows = self.wheel.pop_due(now, self.c.next_at)
        next_at = self.c.next_at
        for row in rows:
            tl = self.timeline(row)
            if tl is None:
                next_at[row] = INF
                continue
            self._touch(row)
            t = float(next_at[row])
            while t <= now:
                self._set_mask(row, tl, t, out)
                if not float(next_at[row]) > t:  # no later change known: settle at now
                    break
                t = float(next_at[row])
            if t < now:
                self._set_mask(row, tl, now, out)
        return len(rows)

    def collect_levels(self, out: Deltas) -> None:
        """Level-bit changes since the last call, with the minute of each."""
        minute, combo, old, new = self._level_log
        if not len(minute):
            return
        out.levels.append(
            (
                np.frombuffer(minute, dtype=np.int64).copy(),
                np.frombuffer(combo, dtype=np.int32).copy(),
                np.frombuffer(old, dtype=np.int32).astype(np.int64),
                np.frombuffer(new, dtype=np.int32).astype(np.int64),
            )
        )
        self._level_log = (array("q"), array("i"), array("i"), array("i"))

    def collect_flows(self, out: Deltas) -> None:
        """Flow changes of the rows touched since the last call."""
        if not self._touched:
            return
        rows = np.fromiter(self._touched, dtype=np.intp, count=len(self._touched))
        before = self._before[: len(rows)]
        after = self.facts[rows]
        self._touched.clear()
        moved = np.zeros(len(rows), dtype=bool)
        for name in FLOW_FIELDS:
            moved |= before[name] != after[name]
        if not moved.any():
            return
        for records, sign in ((before[moved], -1), (after[moved], 1)):
            i, fid, t, amount = flow_entries(_flow_columns(records))
            combo = records["combo"][i]
            keep = combo >= 0
            out.flows.append((combo[keep], fid[keep], t[keep], sign * amount[keep]))

    # -- alerts -----------------------------------------------------------------

    def _alert(
        self, row: int, tl: Timeline, old: int, new: int, now: float, out: Deltas, cause: float
    ) -> None:
        for bit, state in ((B_AT_RISK, AT_RISK), (B_OVERDUE, OVERDUE)):
            if new & bit and not old & bit:
                out.alerts.append(self._alert_record(row, tl, state, tl.since(now)))
        if old & (B_AT_RISK | B_OVERDUE) and not new & (B_AT_RISK | B_OVERDUE):
            out.alerts.append(self._alert_record(row, tl, "cleared", cause))

    def _alert_record(self, row: int, tl: Timeline, transition: str, at: float) -> SlaTransition:
        commune, agency, centre, procedure, fld = self.scopes.combo_attributes[
            int(self.c.combo[row])
        ]
        return SlaTransition(
            at=at,
            dossier_id=cast(str, self.ids[row]),  # a row that changes state is a dossier's
            transition=transition,
            due=_finite_or_none(tl.due(at)),
            consumed_hours=round(tl.consumed(at) / 3600, 3),
            allotted_hours=round(tl.allotted / 3600, 3),
            commune=commune,
            agency=agency,
            centre=centre,
            procedure=procedure,
            field=fld,
        )

    # -- reading ----------------------------------------------------------------

    def describe(self, row: int, at: float) -> dict[str, Any]:
        """The state of one dossier at ``at``, for the REST read."""
        c = self.c
        tl = self.timeline(row)
        base: dict[str, Any] = {"dossier_id": self.ids[row], "at": at}
        if tl is None:
            return {**base, "status": "awaiting_receipt", "sla_state": None}
        commune, agency, centre, procedure, fld = self.scopes.combo_attributes[int(c.combo[row])]
        end, kind = self.end_of(row)
        closed = end <= at
        state = tl.state(at)
        finish_class = None
        if closed and kind in FINISHED_KINDS:
            finish_class = tl.finish_class()
        elif closed:
            finish_class = REJECTED if kind == END_REJECTED else WITHDRAWN
        late = finish_class == LATE or state == OVERDUE
        if not closed:
            due = tl.due(at)
        elif kind in FINISHED_KINDS:
            due = tl.due_at_finish()
        else:
            due = None  # withdrawn or refused: never judged against a due time
        apology = float(c.apology[row])
        apologised = bool(apology) and apology <= at
        return {
            **base,
            "status": self.status(row, at),
            "commune": commune,
            "agency": agency,
            "centre": centre,
            "procedure_code": procedure,
            "field": fld,
            "channel": CHANNEL_NAMES.get(int(c.channel[row])),
            "received": tl.received,
            "clock_start": tl.start,
            "allotted_hours": tl.allotted / 3600,
            "consumed_hours": tl.consumed(at) / 3600,
            "due": due,
            "sla_state": state,
            "finished": end if closed else None,
            "finish_class": finish_class,
            "supplement_requests": tl.requests_by(at),
            "paused": [[a, None if b == INF else b] for a, b in tl.pauses if a <= at],
            "apology_needed": late,
            "apology_issued": apologised,
            "apology_missing": late and not apologised,
            "new_due": (float(c.new_due[row]) or None) if apologised else None,
            "anomalies": [a for a in ANOMALIES if int(c.anomalies[row]) & _A[a]],
        }

    def status(self, row: int, at: float) -> str:
        """The latest lifecycle step reached by ``at``."""
        c = self.c
        best, best_t = "received", -1.0
        for column, name in _STATUS_ORDER:
            t = float(getattr(c, column)[row])
            if t and best_t < t <= at:
                best, best_t = name, t
        return best


_STATUS_ORDER = (
    ("received", "received"),
    ("accepted", "accepted"),
    ("in_progress", "in_progress"),
    ("obligation", "financial_obligation_requested"),
    ("paid", "paid"),
    ("rejected", "rejected_at_intake"),
    ("withdrawn", "withdrawn"),
    ("stopped", "stopped"),
    ("processed", "processed"),
    ("returned", "result_returned"),
    ("apology", "apology_issued"),
    ("rated", "rated"),
)


def _finite_or_none(t: float | None) -> float | None:
    """An instant that can be written down (due never comes: None)."""
    return t if t is not None and math.isfinite(t) else None


def _empty(n: int) -> npt.NDArray[Any]:
    facts = np.zeros(n, dtype=FACTS_DTYPE)
    facts["combo"] = -1
    return facts


def _flow_columns(r: npt.NDArray[Any]) -> FlowColumns:
    kind = r["end_kind"]
    end = r["end"]
    channel = r["channel"]
    zero = np.zeros(len(r))
    return FlowColumns(
        received=r["received"],
        online=(channel == ONLINE_CODES[0]) | (channel == ONLINE_CODES[1]),
        dossier_digitized=r["dossier_digitized"] > 0,
        rejected=np.where(kind == END_REJECTED, end, zero),
        withdrawn=np.where(kind == END_WITHDRAWN, end, zero),
        apology=r["apology"],
        finished=np.where((kind == END_FINISHED) | (kind == END_STOPPED), end, zero),
        klass=r["klass"].astype(np.int64),
        with_result=kind == END_FINISHED,
        result_digitized=r["result_digitized"] > 0,
        fee_required=r["fee"],
        paid_online=r["paid_online"],
        score=r["score"].astype(np.int64),
        complaint=r["complaint"],
        processing_seconds=r["proc_s"].astype(np.float64),
    )
