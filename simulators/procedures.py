"""Simulated dossiers: whole lifecycles planned at receipt, in working time.

``DossierPlanner.plan`` turns one receipt into the dossier's events, timed
with the province's working calendar, with the shares of the profile file
(online filing, digitisation, online payment, supplements, late finishes,
ratings). ``generate`` produces a time-ordered stream for a period, for
replays and benchmarks: the same seed gives the same events, byte for byte.
The live simulator sends each event when the clock reaches it, with a run tag
in every dossier id (``run``), so a restarted simulator reuses no id.
"""

from __future__ import annotations

import heapq
import json
import random
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ioc.calendar import WorkingCalendar
from ioc.clock import VN_TZ, to_iso
from ioc.registry import Procedure, Registry

PROFILE = Path(__file__).parent / "data" / "procedure-profile.toml"
HOUR = 3600.0
# Provincial dossiers handed in at a commune centre (receipt regardless of
# boundary, Decree 118/2025/NĐ-CP; the share is an assumption).
PROVINCIAL_AT_COMMUNE_CENTRE = 0.2


@dataclass(frozen=True, slots=True)
class Profile:
    dossiers_per_office_hour: float
    off_hours_share: float
    channel: dict[str, float]
    outcomes: dict[str, Any]

    @classmethod
    def load(cls, path: Path = PROFILE) -> Profile:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return cls(
            float(data["dossiers_per_office_hour"]),
            float(data["off_hours_share"]),
            data["channel"],
            data["outcomes"],
        )


class DossierPlanner:
    """Plans dossier lifecycles for one province."""

    def __init__(
        self,
        registry: Registry,
        calendar: WorkingCalendar,
        profile: Profile | None = None,
        seed: int = 7,
        run: str = "",
    ) -> None:
        self.reg = registry
        # set apart the dossier (and event) ids of one run from another's;
        # empty for a seeded load that must come out the same every time
        self.run = f"{run}-" if run else ""
        self.cal = calendar
        self.profile = profile or Profile.load()
        self.rng = random.Random(seed)
        self.count = 0
        self._procedures = list(registry.procedures.values())
        # short civil-status and certification procedures are the most common
        self._weights = [
            6.0 if (p.allotted_working_hours or 99) <= 8 else 1.0 for p in self._procedures
        ]
        self._communes = sorted(registry.communes)
        self._commune_centres = {
            c.commune: c.id for c in registry.centres.values() if c.commune is not None
        }
        self._province_centres = [c.id for c in registry.centres.values() if c.commune is None]
        self._agency_of_commune = {
            a.commune: a.id for a in registry.agencies.values() if a.level == "commune"
        }
        self._departments = [a.id for a in registry.agencies.values() if a.level == "province"]
        self._vertical = [a.id for a in registry.agencies.values() if a.level == "vertical"]

    def _chance(self, p: float) -> bool:
        return self.rng.random() < p

    def plan(self, received: float) -> list[dict[str, Any]]:
        """The events of one dossier received at ``received``."""
        rng, out, cal = self.rng, self.profile.outcomes, self.cal
        proc = rng.choices(self._procedures, self._weights)[0]
        commune = rng.choice(self._communes)
        agency, commune_code, level = self._settler(proc, commune)
        channel = self._channel(level, commune, received)
        centre = self._centre(commune, channel, level)
        self.count += 1
        local = datetime.fromtimestamp(received, VN_TZ)
        dossier_id = (
            f"H{self.reg.province_code}.{centre[-5:]}-{local:%y%m%d}-{self.run}{self.count:06d}"
        )
        allotted_s = (
            proc.allotted_working_days * cal.day_seconds
            if proc.allotted_working_days is not None
            else (proc.allotted_working_hours or 8) * HOUR
        )
        head: dict[str, Any] = {
            "province": self.reg.province_code,
            "centre": centre,
            "agency": agency,
            "procedure_code": proc.code,
            "field": proc.field,
            "channel": channel,
            "fee_required": proc.fee_required,
            "paper_result": channel in ("in_person", "postal") and self._chance(0.5),
        }
        if commune_code is not None:
            head["commune"] = commune_code
        if proc.allotted_working_days is not None:
            head["allotted_working_days"] = proc.allotted_working_days
        else:
            head["allotted_working_hours"] = proc.allotted_working_hours
        events: list[tuple[float, str, dict[str, Any]]] = [(received, "received", head)]
        start = cal.start_instant(received, self.reg.cutoff_seconds(proc.code))

        def work(after: float, hours: float) -> float:
            return cal.add(max(after, start), hours * HOUR)

        if self._chance(out["dossier_digitized"]):
            events.append((work(received, rng.uniform(0.02, 0.3)), "dossier_digitized", {}))
        if self._chance(out["rejected_at_intake"]):
            events.append((work(received, rng.uniform(0.1, 1.0)), "rejected_at_intake", {}))
            return self._finish(dossier_id, events)
        accepted = work(received, rng.uniform(0.05, 0.5))
        events.append((accepted, "accepted", {}))
        events.append((work(accepted, rng.uniform(0.1, 1.0)), "in_progress", {}))
        # Processing time as a share of the allotted time: mostly well
        # within it, a few late.
        late = self._chance(out["late"])
        share = 1.0 + rng.expovariate(1 / 0.3) if late else rng.betavariate(2.0, 4.0)
        paused = 0.0
        # the instant from which the rest can follow: after the last supplement
        ready = accepted
        if self._chance(out["supplement"]):
            asks = 2 if self._chance(out["second_supplement"]) else 1
            at = work(accepted, allotted_s / HOUR * rng.uniform(0.1, 0.3))
            for _ in range(asks):
                events.append((at, "supplement_requested", {}))
                back = at + rng.uniform(0.5, 5.0) * 86400
                events.append((back, "supplement_received", {}))
                paused += cal.between(at, back)
                ready = back
                at = work(back, rng.uniform(0.5, 4.0))
        if self._chance(out["withdrawn"]):
            events.append((work(accepted, rng.uniform(0.5, 4.0)), "withdrawn", {}))
            return self._finish(dossier_id, events)
        # processed once the planned working time has passed, and never
        # before the last supplement is in
        processed = max(cal.add(start, allotted_s * share + paused), work(ready, 0.5))
        if self._chance(out["stopped"]):
            events.append((processed, "stopped", {}))
            return self._finish(dossier_id, events)
        if proc.fee_required:
            # the fee is asked for once the dossier is checked and paid before
            # the result: the processing waits for the payment
            asked = work(ready, rng.uniform(0.1, 2.0))
            events.append((asked, "financial_obligation_requested", {}))
            online = channel in ("online", "vneid") and self._chance(out["paid_online"])
            paid = work(asked, rng.uniform(0.1, 8.0))
            events.append((paid, "paid", {"online": online}))
            processed = max(processed, work(paid, 0.25))
        if late and self._chance(out["apology_when_late"]):
            due = cal.add(start, allotted_s + paused)
            new_due = cal.add(due, rng.choice((1, 2, 3)) * cal.day_seconds)
            apology_at = cal.add(max(due - 2 * HOUR, received), 0)
            events.append((apology_at, "apology_issued", {"new_due": to_iso(new_due)}))
        events.append((processed, "processed", {}))
        result_share = (
            out["result_digitized_commune"] if commune_code else out["result_digitized_province"]
        )
        if self._chance(result_share):
            events.append((work(processed, rng.uniform(0.01, 0.2)), "result_digitized", {}))
        returned = work(processed, 0.1 if channel in ("online", "vneid") else rng.uniform(1, 16))
        events.append((returned, "result_returned", {}))
        if self._chance(out["rated"]):
            rated: dict[str, Any] = {"score": rng.choices(range(1, 6), out["score_weights"])[0]}
            if self._chance(out["complaint"] / out["rated"]):
                rated = {"complaint": True}
            events.append((returned + rng.uniform(0.1, 72) * HOUR, "rated", rated))
        return self._finish(dossier_id, events)

    def _settler(self, proc: Procedure, commune: str) -> tuple[str, str | None, str]:
        if proc.agency_level == "commune":
            return self._agency_of_commune.get(commune, self._departments[0]), commune, "commune"
        if proc.agency is not None:
            return proc.agency, None, "province"
        if proc.agency_level == "vertical" and self._vertical:
            return self.rng.choice(self._vertical), None, "province"
        return self.rng.choice(self._departments), None, "province"

    def _channel(self, level: str, commune: str, received: float) -> str:
        ch = self.profile.channel
        if not self.cal.is_working_time(received):  # counters are closed: online only
            return "vneid" if self._chance(ch["vneid_of_online"]) else "online"
        if level == "province":
            online = ch["online_share_province"]
        elif self.reg.communes[commune].level == "phuong":
            online = ch["online_share_ward"]
        else:
            online = ch["online_share_commune"]
        if self._chance(online):
            return "vneid" if self._chance(ch["vneid_of_online"]) else "online"
        return "postal" if self._chance(ch["postal_of_offline"]) else "in_person"

    def _centre(self, commune: str, channel: str, level: str) -> str:
        # Receipts do not follow boundaries: a citizen may use any centre.
        local = self._commune_centres.get(commune)
        if level == "commune" and local and self._chance(0.8):
            return local
        if level == "province" and local and self._chance(PROVINCIAL_AT_COMMUNE_CENTRE):
            return local  # received regardless of boundary (Decree 118/2025/NĐ-CP)
        if self._province_centres and (level == "province" or self._chance(0.5)):
            return self.rng.choice(self._province_centres)
        return self.rng.choice(list(self._commune_centres.values()) or self._province_centres)

    def _finish(
        self, dossier_id: str, events: list[tuple[float, str, dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        out = []
        for i, (ts, kind, extra) in enumerate(sorted(events, key=lambda e: e[0])):
            out.append(
                {
                    "schema": 1,
                    "event_id": f"{dossier_id}/{i}",
                    "type": kind,
                    "dossier_id": dossier_id,
                    "ts": to_iso(round(ts)),
                    **extra,
                }
            )
        return out

    # -- arrivals -------------------------------------------------------------------

    def arrival_rate(self, t: float, per_office_hour: float) -> float:
        """Receipts per hour at ``t``: full in office time, a trickle of
        online filings otherwise."""
        if self.cal.is_working_time(t):
            return per_office_hour
        return per_office_hour * self.profile.off_hours_share

    def next_arrival(self, t: float, per_office_hour: float) -> float:
        """Next receipt after ``t`` (a Poisson process, thinned)."""
        peak = per_office_hour / HOUR
        while True:
            t += self.rng.expovariate(peak)
            if self.rng.random() * per_office_hour <= self.arrival_rate(t, per_office_hour):
                return t


def generate(
    planner: DossierPlanner, start: float, end: float, per_office_hour: float
) -> Iterator[dict[str, Any]]:
    """Every event of dossiers received in [start, end), in time order
    (events after ``end`` of dossiers received before it included)."""
    pending: list[tuple[float, int, dict[str, Any]]] = []
    seq = 0
    t = planner.next_arrival(start, per_office_hour)
    while t < end or pending:
        while t < end and (not pending or t <= pending[0][0]):
            for ev in planner.plan(t):
                heapq.heappush(pending, (_instant(ev["ts"]), seq, ev))
                seq += 1
            t = planner.next_arrival(t, per_office_hour)
        if pending and (t >= end or pending[0][0] < t):
            yield heapq.heappop(pending)[2]


def _instant(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
