"""Counters per scope for the KPI windows, kept with numpy.

Flows are summed per scope into ``today``, ``month`` and ``ytd`` vectors,
a ring of 25 hourly vectors (for the rolling 24 h window) and a vector for
the current minute (for the 1-minute series); levels are kept per scope as
of now. Changes arrive as ``Deltas`` tagged with combo ids and are applied
in bulk with ``np.add.at``, so the per-event cost stays in the dossier store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ioc.kpis import FLOWS, LEVELS, OFFSET, WINDOWS
from streams.dossiers import Deltas
from streams.scopes import ScopeIndex

NF, NL = len(FLOWS), len(LEVELS)
RING = 25  # hour slots: the 24 h window plus the hour that is rolling out
_BITS = np.arange(NL, dtype=np.int64)

IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class Cells:
    """Flow increments summed per (scope, bucket); a bucket is an hour or a
    minute since the epoch."""

    scope: npt.NDArray[np.int32]
    bucket: npt.NDArray[np.int64]
    values: IntArray  # [rows, NF]

    def __len__(self) -> int:
        return len(self.scope)

    @classmethod
    def empty(cls) -> Cells:
        none = np.zeros(0, dtype=np.int64)
        return cls(none.astype(np.int32), none, np.zeros((0, NF), dtype=np.int64))

    @classmethod
    def sum(
        cls, scope: npt.NDArray[np.int32], bucket: IntArray, fid: IntArray, amount: IntArray
    ) -> Cells:
        if not len(scope):
            return cls.empty()
        # one int64 key per (scope, bucket): np.unique on 1-D keys is fast
        base = int(bucket.min())
        span = int(bucket.max()) - base + 1
        keys = scope.astype(np.int64) * span + (bucket - base)
        uniq, inverse = np.unique(keys, return_inverse=True)
        values = np.zeros((len(uniq), NF), dtype=np.int64)
        np.add.at(values.reshape(-1), inverse * NF + fid, amount)
        nonzero = values.any(axis=1)
        return cls(
            (uniq[nonzero] // span).astype(np.int32), uniq[nonzero] % span + base, values[nonzero]
        )


class ScopeWindows:
    def __init__(self, scopes: ScopeIndex, now: float) -> None:
        self.scopes = scopes
        n = max(len(scopes), 64)
        self.levels = np.zeros((n, NL), dtype=np.int64)
        self.today = np.zeros((n, NF), dtype=np.int64)
        self.month = np.zeros((n, NF), dtype=np.int64)
        self.ytd = np.zeros((n, NF), dtype=np.int64)
        self.ring = np.zeros((n, RING, NF), dtype=np.int64)
        self.ring_hour = np.full(RING, -1, dtype=np.int64)
        self.dirty = np.zeros(n, dtype=bool)
        # when each scope was last taken as dirty (the caller's clock)
        self.sent_at = np.full(n, -np.inf)
        # the edge time (ioc.topics.EDGE_HEADER) of the oldest change not yet
        # taken, NaN when no change since came from an event with one
        self.edge = np.full(n, np.nan)
        # level changes of 1-minute-series scopes not yet sampled: scope, minute, change
        self._level_log: list[tuple[npt.NDArray[np.int32], IntArray, IntArray]] = []
        # flows dated after today (clock skew), applied when their day comes
        self._future: list[tuple[npt.NDArray[np.int32], IntArray, IntArray, IntArray]] = []
        # (scope, instant, flow, amount) not yet taken for the database
        self._pending: list[
            tuple[npt.NDArray[np.int32], npt.NDArray[np.float64], IntArray, IntArray]
        ] = []
        self.hour = int(now // 3600)
        self.day = int((now + OFFSET) // 86400)
        self._calendar_keys()
        for h in range(self.hour - RING + 1, self.hour + 1):
            self.ring_hour[h % RING] = h

    def _calendar_keys(self) -> None:
        """Day numbers where this month and this year begin (and the year ends)."""
        today = np.datetime64(self.day, "D")
        month = today.astype("datetime64[M]")
        year = today.astype("datetime64[Y]")
        self.month_first = int(month.astype("datetime64[D]").astype(np.int64))
        self.year_first = int(year.astype("datetime64[D]").astype(np.int64))
        self.year_end = int((year + 1).astype("datetime64[D]").astype(np.int64))

    def _grow(self) -> None:
        n = len(self.scopes)
        if n <= len(self.levels):
            return
        size = max(n, len(self.levels) * 2)

        def grow(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
            out = np.zeros((size, *a.shape[1:]), dtype=a.dtype)
            out[: len(a)] = a
            return out

        self.levels, self.today, self.month = grow(self.levels), grow(self.today), grow(self.month)
        self.ytd, self.ring = grow(self.ytd), grow(self.ring)
        self.dirty = grow(self.dirty)
        sent_at = np.full(size, -np.inf)
        sent_at[: len(self.sent_at)] = self.sent_at
        self.sent_at = sent_at
        edge = np.full(size, np.nan)
        edge[: len(self.edge)] = self.edge
        self.edge = edge

    # -- applying changes --------------------------------------------------------

    def apply(self, deltas: Deltas, edge: float | None = None) -> None:
        """Apply counter changes; ``edge`` is the oldest edge time of the
        events they came from, noted for scopes with no older change pending."""
        self._grow()
        if edge is not None:
            clean = ~self.dirty
        for combo, fid, t, amount in deltas.flows:
            if not len(combo):
                continue
            entry, scope = self.scopes.expand(combo)
            t = t[entry]
            self._pending.append((scope, t, fid[entry], amount[entry]))
            self._add_flows(scope, (t // 3600).astype(np.int64), fid[entry], amount[entry])
        for minute, combo, old, new in deltas.levels:
            if not len(combo):
                continue
            change = ((new[:, None] >> _BITS) & 1) - ((old[:, None] >> _BITS) & 1)
            entry, scope = self.scopes.expand(combo)
            change = change[entry]
            flat = (scope.astype(np.int64)[:, None] * NL + _BITS).reshape(-1)
            np.add.at(self.levels.reshape(-1), flat, change.reshape(-1))
            self.dirty[scope] = True
            keep = self.scopes.in_minute_series[scope]
            if keep.any():
                self._level_log.append((scope[keep], minute[entry][keep], change[keep]))
        if edge is not None:
            self.edge[clean & self.dirty] = edge

    def _add_flows(
        self,
        scope: npt.NDArray[np.int32],
        hour: IntArray,
        fid: npt.NDArray[Any],
        amount: IntArray,
    ) -> None:
        day = (hour * 3600 + OFFSET) // 86400
        future = day > self.day
        if future.any():
            self._future.append((scope[future], hour[future], fid[future], amount[future]))
            keep = ~future
            scope, hour, fid, amount, day = (
                scope[keep],
                hour[keep],
                fid[keep],
                amount[keep],
                day[keep],
            )
        # flat indices: np.add.at on 1-D targets is several times faster
        flat = scope.astype(np.int64) * NF + fid
        sel = (day >= self.year_first) & (day < self.year_end)
        np.add.at(self.ytd.reshape(-1), flat[sel], amount[sel])
        sel &= day >= self.month_first
        np.add.at(self.month.reshape(-1), flat[sel], amount[sel])
        sel &= day == self.day
        np.add.at(self.today.reshape(-1), flat[sel], amount[sel])
        in_ring = hour > self.hour - RING
        # a little clock skew: count not-yet-begun hours in the current one
        slot = np.minimum(hour[in_ring], self.hour) % RING
        ring_flat = (scope[in_ring].astype(np.int64) * RING + slot) * NF + fid[in_ring]
        np.add.at(self.ring.reshape(-1), ring_flat, amount[in_ring])
        self.dirty[scope] = True

    # -- time moving on -------------------------------------------------------------

    def roll(self, now: float) -> bool:
        """Move the windows to ``now``; True when a day, month or year began
        (every scope's windows changed)."""
        hour = int(now // 3600)
        rolled = False
        if hour != self.hour:
            for h in range(max(self.hour + 1, hour - RING + 1), hour + 1):
                slot = h % RING
                self.ring[:, slot] = 0
                self.ring_hour[slot] = h
            self.hour = hour
            self.dirty[: len(self.scopes)] = True
        day = int((now + OFFSET) // 86400)
        if day != self.day:
            old_month, old_year = self.month_first, self.year_first
            self.day = day
            self._calendar_keys()
            self.today[:] = 0
            if self.month_first != old_month:
                self.month[:] = 0
            if self.year_first != old_year:
                self.ytd[:] = 0
            future, self._future = self._future, []
            for f_scope, f_hour, f_fid, f_amount in future:
                self._add_flows(f_scope, f_hour, f_fid, f_amount)
            rolled = True
        return rolled

    def take_level_samples(self) -> tuple[IntArray, npt.NDArray[np.int32], IntArray]:
        """Levels at the end of each minute in which they changed, for the
        1-minute series: (minute, scope, levels[rows, NL]). Computed from the
        logged changes with cumulative sums, so time passing costs nothing."""
        log, self._level_log = self._level_log, []
        if not log:
            return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros((0, NL), np.int64)
        scope = np.concatenate([e[0] for e in log]).astype(np.int64)
        minute = np.concatenate([e[1] for e in log])
        change = np.concatenate([e[2] for e in log])
        order = np.lexsort((minute, scope))  # by scope, then minute (stable)
        scope, minute, change = scope[order], minute[order], change[order]
        running = np.cumsum(change, axis=0)
        # restart the running sums at each scope
        first = np.flatnonzero(np.r_[True, scope[1:] != scope[:-1]])
        offset = np.repeat(
            running[first] - change[first], np.diff(np.r_[first, len(scope)]), axis=0
        )
        running -= offset
        # the last change of each (scope, minute) holds the minute's end state
        last = np.flatnonzero(np.r_[(scope[1:] != scope[:-1]) | (minute[1:] != minute[:-1]), True])
        totals = np.zeros((len(self.levels), NL), dtype=np.int64)
        np.add.at(totals, scope, change)
        base = self.levels - totals  # the levels before these changes
        s = scope[last]
        return minute[last], s.astype(np.int32), base[s] + running[last]

    def take_dirty(
        self, now: float = 0.0, min_gap: float = 0.0
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        """Scopes changed since they were last taken, and the edge time of
        each one's oldest change (NaN: none known). With ``min_gap``, a scope
        taken less than ``min_gap`` before ``now`` stays dirty for a later
        call: a busy scope is taken at most once per gap, and the first change
        after a quiet spell at once."""
        self._grow()
        n = len(self.scopes)
        ready = self.dirty[:n] & (now - self.sent_at[:n] >= min_gap)
        scopes = np.nonzero(ready)[0]
        edges = self.edge[scopes]
        self.dirty[scopes] = False
        self.sent_at[scopes] = now
        self.edge[scopes] = np.nan
        return scopes, edges

    def take_flows(self) -> tuple[Cells, Cells]:
        """Flow increments since the last call, summed per (scope, hour) and
        per (scope, minute) of their instants."""
        pending, self._pending = self._pending, []
        if not pending:
            return Cells.empty(), Cells.empty()
        scope = np.concatenate([p[0] for p in pending])
        t = np.concatenate([p[1] for p in pending])
        fid = np.concatenate([p[2] for p in pending])
        amount = np.concatenate([p[3] for p in pending])
        minute = self.scopes.in_minute_series[scope]
        return (
            Cells.sum(scope, (t // 3600).astype(np.int64), fid, amount),
            Cells.sum(
                scope[minute], (t[minute] // 60).astype(np.int64), fid[minute], amount[minute]
            ),
        )

    # -- reading -------------------------------------------------------------------

    def flows(self, scope: int) -> dict[str, IntArray]:
        valid = (self.ring_hour > self.hour - 24) & (self.ring_hour <= self.hour)
        return {
            "today": self.today[scope],
            "24h": self.ring[scope, valid].sum(axis=0),
            "month": self.month[scope],
            "ytd": self.ytd[scope],
        }

    def counters(self, scope: int) -> dict[str, Any]:
        """Raw counters of one scope: flows per window and levels now."""
        flows = self.flows(scope)
        return {
            "flows": {w: flows[w].tolist() for w in WINDOWS},
            "levels": self.levels[scope].tolist(),
        }

    def load_hourly(self, scope: npt.NDArray[np.int32], hour: IntArray, values: IntArray) -> None:
        """Fill the windows from stored hourly rows (after a restart)."""
        self._grow()
        if not len(scope):
            return
        rows, cols = np.nonzero(values)
        self._add_flows(scope[rows], hour[rows], cols, values[rows, cols])
