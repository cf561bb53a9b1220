"""The daily digest's owner: when it falls due on the stage's clock, and
the outbox rows it writes."""

from __future__ import annotations

from alerts.digest_job import digest_due, digest_rows, last_digest
from alerts.model import Alert
from alerts.routing import Routing
from alerts.rules import DigestConfig
from ioc.calendar import WorkingCalendar
from tests.alerts.helpers import at

CONFIG = DigestConfig(at=7 * 3600 + 30 * 60, overdue_rules=("dossier-overdue",))


def test_the_first_digest_is_the_next_one_after_the_start(cal: WorkingCalendar) -> None:
    # Friday 13 February 2026, 12:00: Tết follows, the next working day is the 23rd
    assert digest_due(cal, CONFIG, None, at("2026-02-13T12:00")) == (
        None,
        at("2026-02-23T07:30"),
    )


def test_a_digest_is_due_at_its_hour_once(cal: WorkingCalendar) -> None:
    monday = at("2026-03-16T07:30")
    assert digest_due(cal, CONFIG, monday, at("2026-03-16T07:29")) == (None, monday)
    fire, following = digest_due(cal, CONFIG, monday, monday)
    assert (fire, following) == (monday, at("2026-03-17T07:30"))
    assert digest_due(cal, CONFIG, following, at("2026-03-16T18:00")) == (None, following)


def test_after_days_without_a_stage_one_digest_of_the_day_is_made(cal: WorkingCalendar) -> None:
    fire, following = digest_due(cal, CONFIG, at("2026-03-16T07:30"), at("2026-03-18T10:00"))
    assert (fire, following) == (at("2026-03-18T07:30"), at("2026-03-19T07:30"))


def test_no_digest_on_a_day_off(cal: WorkingCalendar) -> None:
    # Saturday 21 March 2026: the last digest was Friday's
    assert last_digest(cal, CONFIG, at("2026-03-21T09:00")) == at("2026-03-20T07:30")


def test_rows_have_one_key_per_date_leader_and_channel(
    routing: Routing, cal: WorkingCalendar
) -> None:
    alert = Alert(
        id="al-1",
        rule="dossier-overdue",
        subject="dossier:D1",
        severity="major",
        opened_at=at("2026-03-13T09:00"),
        units={"agency": "agency:ubnd-00166", "commune": "commune:00166"},
        due=at("2026-03-13T09:00"),
    )
    rows = digest_rows([alert], routing, CONFIG, cal, at("2026-03-16T07:30"))
    keys = [r[0] for r in rows]
    assert keys and len(set(keys)) == len(keys)
    assert all(k.startswith("digest:2026-03-16/0/") and k.endswith("/email") for k in keys)
    payload = rows[0][6]
    assert payload["digest"]["overdue"] == 1 and payload["rule"] == "digest"
    assert "1 hồ sơ quá hạn" in payload["text_vi"] and "1 overdue" in payload["text_en"]
