"""KPI definitions: one place, used live, on replay and on recomputation.

Every KPI is a formula over two kinds of counters:

- **flows**, counted at an instant and summed over a window. Each flow
  belongs to a cohort: the *receipt* cohort is counted at the receipt time,
  the *finish* cohort at the finish time (first of processed, result returned,
  stopped), the rest at their own event's time. A fact that arrives later
  (a rating, a digitised result) updates the cohort's count at that instant.
- **levels**, the number of open dossiers in a state at the window's end
  (now): open, on track, at risk, overdue, paused, within deadline, overdue
  without an apology letter, and the overdue backlog by age.

Windows end now: ``today`` (since local midnight), ``24h`` (this hour and
the 23 before it), ``month`` and ``ytd`` (since the first of the month/year).
``docs/kpis.md`` states each formula in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from ioc.clock import VN_TZ
from ioc.sla import AGE_LABELS

# Processing-time histogram: upper bin edges in working hours (inclusive).
PROCESSING_EDGES_H: tuple[float, ...] = (
    0.5,
    1,
    2,
    4,
    8,
    12,
    16,
    24,
    32,
    40,
    56,
    80,
    120,
    160,
    240,
    320,
    480,
    960,
)

FLOWS: tuple[str, ...] = (
    # receipt cohort
    "received",
    "received_online",
    "dossier_digitized",
    # at their own instant
    "rejected_at_intake",
    "withdrawn",
    "apology_issued",
    # finish cohort
    "finished",
    "early",
    "on_time",
    "late",
    "late_no_apology",
    "with_result",
    "result_digitized",
    "fee_bearing",
    "paid_online",
    "rated",
    "scored",
    "rating_sum",
    "dissatisfied",
    "processing_minutes",
    *(f"processing_le_{e:g}h" for e in PROCESSING_EDGES_H),
    "processing_over",
)
F = {name: i for i, name in enumerate(FLOWS)}
PROCESSING_EDGES = np.array(PROCESSING_EDGES_H)
HIST0 = F[f"processing_le_{PROCESSING_EDGES_H[0]:g}h"]
N_HIST = len(PROCESSING_EDGES_H) + 1
N_FLOWS = len(FLOWS)

LEVELS: tuple[str, ...] = (
    "open",
    "on_track",
    "at_risk",
    "overdue",
    "paused",
    "within_deadline",
    "overdue_no_apology",
    *(f"overdue_age_{label}" for label in AGE_LABELS),
)
L = {name: i for i, name in enumerate(LEVELS)}

WINDOWS: tuple[str, ...] = ("today", "24h", "month", "ytd")


# Classes of a finished dossier, as coded in ``FlowColumns.klass``.
KLASS_EARLY, KLASS_ON_TIME, KLASS_LATE = 1, 2, 3

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class FlowColumns:
    """What dossiers contribute to the flows, one array entry per dossier.

    Instants are epoch seconds, 0 when absent. ``finished`` is the finish
    instant (processed, result returned or stopped), ``klass`` its class.
    """

    received: FloatArray
    online: BoolArray
    dossier_digitized: BoolArray
    rejected: FloatArray
    withdrawn: FloatArray
    apology: FloatArray
    finished: FloatArray
    klass: IntArray
    with_result: BoolArray
    result_digitized: BoolArray
    fee_required: BoolArray
    paid_online: BoolArray
    score: IntArray
    complaint: BoolArray
    processing_seconds: FloatArray


def flow_entries(c: FlowColumns) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    """The (dossier index, flow, instant, amount) entries dossiers contribute.

    This is the definition of every flow; see the cohorts above. Built as
    one boolean matrix (dossier x flow) with the instant and amount of each
    cell, so a batch costs a few dozen numpy operations whatever its size.
    """
    n = len(c.received)
    hit = np.zeros((n, N_FLOWS), dtype=bool)
    at = np.zeros((n, N_FLOWS))
    amount = np.ones((n, N_FLOWS), dtype=np.int64)

    got = c.received > 0
    for name, mask in (
        ("received", got),
        ("received_online", got & c.online),
        ("dossier_digitized", got & c.dossier_digitized),
    ):
        hit[:, F[name]] = mask
        at[:, F[name]] = c.received
    for name, instant in (
        ("rejected_at_intake", c.rejected),
        ("withdrawn", c.withdrawn),
        ("apology_issued", c.apology),
    ):
        hit[:, F[name]] = got & (instant > 0)
        at[:, F[name]] = instant

    done = got & (c.finished > 0)
    late = done & (c.klass == KLASS_LATE)
    result = done & c.with_result
    fee = done & c.fee_required
    scored = done & (c.score > 0)
    minutes = np.rint(c.processing_seconds / 60).astype(np.int64)
    for name, mask in (
        ("finished", done),
        ("early", done & (c.klass == KLASS_EARLY)),
        ("on_time", done & (c.klass == KLASS_ON_TIME)),
        ("late", late),
        ("late_no_apology", late & (c.apology == 0)),
        ("with_result", result),
        ("result_digitized", result & c.result_digitized),
        ("fee_bearing", fee),
        ("paid_online", fee & c.paid_online),
        ("rated", done & (scored | c.complaint)),
        ("scored", scored),
        ("rating_sum", scored),
        ("dissatisfied", done & (c.complaint | ((c.score > 0) & (c.score <= 2)))),
        ("processing_minutes", done & (minutes > 0)),
    ):
        hit[:, F[name]] = mask
    amount[:, F["rating_sum"]] = c.score
    amount[:, F["processing_minutes"]] = minutes
    bins = np.searchsorted(PROCESSING_EDGES, c.processing_seconds / 3600, side="left")
    hit[np.flatnonzero(done), HIST0 + bins[done]] = True
    at[:, F["finished"] :] = c.finished[:, None]

    rows, cols = np.nonzero(hit)
    return rows, cols.astype(np.int64), at[rows, cols], amount[rows, cols]


def p90_hours(hist: Sequence[int]) -> float | None:
    """The 90th percentile of processing time, as the upper edge of the
    histogram bin holding the ceil(0.9 n)-th smallest value (nearest rank).
    ``None`` with no finished dossiers or when it falls in the overflow bin."""
    n = sum(hist)
    if n == 0:
        return None
    rank = math.ceil(0.9 * n)
    seen = 0
    for i, count in enumerate(hist):
        seen += count
        if seen >= rank:
            return PROCESSING_EDGES_H[i] if i < len(PROCESSING_EDGES_H) else None
    return None


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def derive(flows: Sequence[int], levels: Sequence[int], hours: float) -> dict[str, object]:
    """The KPI values of one scope and window from its counters.

    ``flows`` are summed over the window, ``levels`` taken at its end,
    ``hours`` is the window's elapsed length (for per-hour throughput).
    """
    fl = {name: int(flows[i]) for i, name in enumerate(FLOWS)}
    lv = {name: int(levels[i]) for i, name in enumerate(LEVELS)}
    finished = fl["finished"]
    to_settle = finished + lv["open"]
    kept = fl["early"] + fl["on_time"] + lv["within_deadline"]
    hist = [int(flows[HIST0 + i]) for i in range(N_HIST)]
    return {
        "received": fl["received"],
        "finished": finished,
        "to_settle": to_settle,
        "open": lv["open"],
        "on_track": lv["on_track"],
        "at_risk": lv["at_risk"],
        "paused": lv["paused"],
        "overdue": lv["overdue"],
        "overdue_age": {label: lv[f"overdue_age_{label}"] for label in AGE_LABELS},
        "early": fl["early"],
        "on_time": fl["on_time"],
        "late": fl["late"],
        "on_time_rate": _ratio(kept, to_settle),
        "late_rate": _ratio(fl["late"], finished),
        "missing_apology": fl["late_no_apology"] + lv["overdue_no_apology"],
        "online_submission_rate": _ratio(fl["received_online"], fl["received"]),
        "online_payment_rate": _ratio(fl["paid_online"], fl["fee_bearing"]),
        "dossier_digitisation_rate": _ratio(fl["dossier_digitized"], fl["received"]),
        "result_digitisation_rate": _ratio(fl["result_digitized"], fl["with_result"]),
        "avg_processing_hours": _ratio(fl["processing_minutes"] / 60, finished),
        "p90_processing_hours": p90_hours(hist),
        "satisfaction_mean": _ratio(fl["rating_sum"], fl["scored"]),
        # 766 indicator 5.4: 100% - overdue rate - complaint rate, over the dossiers to settle
        "handling_satisfaction_rate": None
        if not to_settle
        else max(0.0, (kept - fl["dissatisfied"]) / to_settle),
        "complaint_share": _ratio(fl["dissatisfied"], fl["rated"]),
        "received_per_hour": _ratio(fl["received"], hours),
        "finished_per_hour": _ratio(finished, hours),
        "rejected_at_intake": fl["rejected_at_intake"],
        "withdrawn": fl["withdrawn"],
        "apology_issued": fl["apology_issued"],
    }


# -- buckets and windows ------------------------------------------------------

OFFSET = 7 * 3600  # UTC+7: local hours align with UTC hours


def hour_of(t: float) -> int:
    """Hour bucket: hours since the epoch."""
    return int(t // 3600)


def day_of(t: float) -> int:
    """Local day bucket: days since 1970-01-01 in UTC+7."""
    return int((t + OFFSET) // 86400)


def window_start(window: str, now: float) -> float:
    local = datetime.fromtimestamp(now, VN_TZ)
    if window == "today":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elif window == "24h":
        return (hour_of(now) - 23) * 3600.0
    elif window == "month":
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif window == "ytd":
        start = local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        raise ValueError(f"unknown window {window!r}; expected one of {', '.join(WINDOWS)}")
    return start.timestamp()


def window_hours(window: str, now: float) -> float:
    return max(now - window_start(window, now), 1.0) / 3600
