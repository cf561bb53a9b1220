"""Units' KPIs for the unit rules, added up from every procedure
partition's share (``alerts.unit_messages``).

An alerts partition's stage keeps the latest share of each unit it owns
from each procedure partition, adds the shares up into the unit's KPI view
(``ioc.feed.kpi_view``) and turns that into signals
(``alerts.signals.unit_signals``). Its state is stored with the engine's,
at the partition's offset, so a batch done again gives the same signals.

- Only what the unit rules read is kept of a share (the flows and levels
  behind the backlog, the on-time rate and the missing apology letters),
  and only for the unit kinds the rules judge: the state stays small.
- A share older than the one held (sent again after a newer one) is dropped.
- A signal goes to the engine only when its value or sample changed since
  the last one of its (kind, unit, window): a backlog that stays at 12 is
  one signal, not one per KPI update, so an alert's history holds changes,
  not repeats. (So an alert an operator resolved while the backlog stays
  put opens again only when the backlog moves.)
"""

from __future__ import annotations

from typing import Any

from alerts.model import Signal
from alerts.rules import RuleSet
from alerts.signals import UNIT_SCOPES, unit_signals
from alerts.unit_messages import UnitCounters
from ioc.feed import kpi_view, sum_counters
from ioc.kpis import FLOWS, LEVELS, WINDOWS
from ioc.updates import Counters

# what ``derive`` reads for the overdue backlog, the on-time rate and missing apologies
KEPT_FLOWS = tuple(FLOWS.index(n) for n in ("finished", "early", "on_time", "late_no_apology"))
KEPT_LEVELS = tuple(
    LEVELS.index(n) for n in ("open", "within_deadline", "overdue", "overdue_no_apology")
)
# a share as stored: [at, {window: kept flows}, kept levels]
Share = list[Any]


def kept(counters: Counters, at: float) -> Share:
    flows = {w: [counters["flows"][w][i] for i in KEPT_FLOWS] for w in WINDOWS}
    return [at, flows, [counters["levels"][i] for i in KEPT_LEVELS]]


def expand(share: Share) -> Counters:
    """Full counter vectors from a kept share (zero where nothing was kept)."""
    flows = {}
    for w in WINDOWS:
        vector = [0] * len(FLOWS)
        for i, v in zip(KEPT_FLOWS, share[1][w], strict=True):
            vector[i] = v
        flows[w] = vector
    levels = [0] * len(LEVELS)
    for i, v in zip(KEPT_LEVELS, share[2], strict=True):
        levels[i] = v
    return {"flows": flows, "levels": levels}


class UnitKpis:
    """The shares and last signals of one alerts partition's units."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.kinds = {r.subject for r in rules.rules.values() if r.subject in UNIT_SCOPES}
        self.shares: dict[str, dict[str, Share]] = {}  # unit -> procedure partition -> share
        self.last: dict[str, tuple[float | None, int | None]] = {}  # signal key -> (value, sample)

    def apply(self, update: UnitCounters) -> list[Signal]:
        """The signals one procedure partition's update gives."""
        out: list[Signal] = []
        part = str(update.part)
        for scope in sorted(update.scopes):
            if scope.partition(":")[0] not in self.kinds:
                continue
            shares = self.shares.setdefault(scope, {})
            held = shares.get(part)
            if held is not None and update.at < held[0]:
                continue
            shares[part] = kept(update.scopes[scope], update.at)
            total = sum_counters(expand(s) for s in shares.values())
            for s in unit_signals(kpi_view(scope, "", total, update.at)):
                key = f"{s.kind}|{s.subject}|{s.window or ''}"
                if self.last.get(key) == (s.value, s.sample) or not self.rules.for_signal(s):
                    continue
                self.last[key] = (s.value, s.sample)
                out.append(s)
        return out

    def state(self) -> dict[str, Any]:
        return {"shares": self.shares, "last": {k: list(v) for k, v in self.last.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        self.shares = {scope: dict(parts) for scope, parts in state.get("shares", {}).items()}
        self.last = {k: (v[0], v[1]) for k, v in state.get("last", {}).items()}
