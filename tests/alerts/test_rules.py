from __future__ import annotations

from pathlib import Path

import pytest

from alerts.config import ConfigError
from alerts.model import Signal
from alerts.rules import SAMPLE_RULES, MuteWindow, Severity, load_rules, parse_rules, unmute
from ioc.calendar import WorkingCalendar
from ioc.clock import parse_instant, to_iso
from tests.alerts.conftest import overdue_rule, rule_set


def at(text: str) -> float:
    return parse_instant(text)


def test_the_sample_rules_file_loads() -> None:
    rules = load_rules(SAMPLE_RULES)
    kinds = {r.kind for r in rules.rules.values()}
    assert kinds == {
        "dossier_overdue",
        "dossier_at_risk",
        "overdue_backlog",
        "on_time_rate",
        "missing_apology",
        "aqi",
        "flood_level",
        "flood_rising",
        "sensor_health",
    }
    overdue = rules.rules["dossier-overdue"]
    assert overdue.severity is Severity.MAJOR
    assert [s.after_working_days for s in overdue.escalation] == [0, 2, 5]
    assert rules.digest is not None and rules.digest.overdue_rules == ("dossier-overdue",)


def test_every_problem_is_reported_with_its_entry_and_field(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        """
[[rules]]
id = "a"
kind = "dossier_overdue"
severity = "urgent"

[[rules]]
id = "b"
kind = "overdue_backlog"
subject = "dossier"
severity = "warning"

[[rules]]
id = "a"
kind = "aqi"
severity = "major"
band = "awful"
abov = 3

[[rules.escalation]]
after_working_days = 2
to = ["district"]
level = 0

[[rules.escalation]]
after_working_days = 1
to = ["province"]
level = 1
channels = ["sms"]

[[rules.mute]]
from = "25:00"
to = "06:00"
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_rules(path)
    problems = err.value.problems
    assert str(path) in str(err.value)
    expected = [
        "rules[0] (a): 'severity' is 'urgent', expected one of info, warning, major, critical",
        "rules[1] (b): 'subject' is 'dossier', expected one of commune, agency, centre, province",
        "rules[1] (b): missing 'above'",
        "rules[2] (a): unknown key 'abov'",
        "rules[2] (a): 'band' is 'awful', expected one of good, moderate, poor, bad, very_bad, "
        "hazardous",
        "rules[2] (a).mute[0]: 'from' must be a local time like \"07:30\"",
        "rules[2] (a).escalation[0]: 'to' has 'district'",
        "rules[2] (a).escalation[0]: 'level' must be a whole number >= 1",
        "rules[2] (a).escalation[1]: 'channels' has 'sms'",
        "rules[2] (a): escalation steps must come in increasing 'after_working_days'",
        "rules[2]: duplicate id 'a'",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)


def test_thresholds_that_do_not_apply_are_refused() -> None:
    with pytest.raises(ConfigError) as err:
        rule_set(overdue_rule(above=3))
    assert err.value.problems == [
        "rules[0] (overdue): 'above' does not apply to a dossier_overdue rule"
    ]


def test_an_on_time_rate_is_a_rate_with_a_window() -> None:
    with pytest.raises(ConfigError) as err:
        rule_set({"id": "r", "kind": "on_time_rate", "severity": "warning", "below": 90})
    assert set(err.value.problems) == {
        "rules[0] (r): 'below' is a rate between 0 and 1 (0.9 for 90%)",
        "rules[0] (r): missing 'window'",
    }


def test_a_digest_must_name_overdue_rules() -> None:
    with pytest.raises(ConfigError) as err:
        rule_set(overdue_rule(), digest={"at": "7h", "overdue_rules": ["nope"]})
    assert set(err.value.problems) == {
        "digest: 'at' must be a local time like \"07:30\"",
        "digest: 'overdue_rules' names 'nope', not a dossier_overdue rule",
    }


def test_not_toml_and_missing_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rules]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: 1 problem"):
        load_rules(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_rules(tmp_path / "none.toml")


def test_thresholds() -> None:
    rules = rule_set(
        {"id": "b", "kind": "overdue_backlog", "severity": "warning", "above": 10},
        {
            "id": "r",
            "kind": "on_time_rate",
            "severity": "warning",
            "below": 0.9,
            "window": "month",
            "min_dossiers": 30,
        },
        {"id": "aqi", "kind": "aqi", "severity": "major", "band": "bad"},
        {"id": "flood", "kind": "flood_level", "severity": "major", "level": "II"},
    ).rules
    backlog, rate, aqi, flood = rules["b"], rules["r"], rules["aqi"], rules["flood"]
    assert backlog.breached(Signal("overdue_backlog", "commune:00166", 0, value=11))
    assert not backlog.breached(Signal("overdue_backlog", "commune:00166", 0, value=10))
    month = Signal("on_time_rate", "commune:00166", 0, value=0.8, window="month", sample=40)
    assert rate.judges(month) and rate.breached(month)
    assert not rate.judges(Signal("on_time_rate", "commune:00166", 0, value=0.8, window="today"))
    few = Signal("on_time_rate", "commune:00166", 0, value=0.5, window="month", sample=29)
    assert rate.breached(few) is None  # too few dossiers to judge
    assert aqi.breached(Signal("aqi", "area:x", 0, value=151))
    assert not aqi.breached(Signal("aqi", "area:x", 0, value=150))
    assert aqi.level_of(151) == 4 and aqi.level_of(201) == 5
    assert flood.breached(Signal("flood_level", "sensor:x", 0, value=2))
    assert not flood.breached(Signal("flood_level", "sensor:x", 0, value=2, ended=True))
    assert not aqi.judges(Signal("aqi", "commune:00166", 0, value=300))


def test_a_night_window_runs_through_midnight(cal: WorkingCalendar) -> None:
    night = parse_rules(
        {
            "rules": [
                {
                    "id": "n",
                    "kind": "aqi",
                    "severity": "major",
                    "band": "bad",
                    "mute": [{"from": "22:00", "to": "06:00", "days": ["fri"]}],
                }
            ]
        }
    ).rules["n"]
    (window,) = night.mute
    friday_night = at("2026-03-13T23:00:00+07:00")
    saturday_small_hours = at("2026-03-14T03:00:00+07:00")
    assert window.muted(friday_night, cal) and window.muted(saturday_small_hours, cal)
    assert not window.muted(at("2026-03-12T23:00:00+07:00"), cal)  # Thursday night
    assert to_iso(unmute(friday_night, night.mute, cal)) == "2026-03-14T06:00:00+07:00"
    assert to_iso(unmute(saturday_small_hours, night.mute, cal)) == "2026-03-14T06:00:00+07:00"


def test_outside_working_time_waits_for_the_office(cal: WorkingCalendar) -> None:
    office = (MuteWindow("outside_working_time"),)
    saturday = at("2026-03-14T10:00:00+07:00")
    assert to_iso(unmute(saturday, office, cal)) == "2026-03-16T08:00:00+07:00"
    lunch = at("2026-03-16T12:30:00+07:00")
    assert to_iso(unmute(lunch, office, cal)) == "2026-03-16T13:00:00+07:00"
    closing = at("2026-03-16T17:00:00+07:00")  # the end of a period still counts
    assert unmute(closing, office, cal) == closing
    # Tết 2026: 14-22 February off
    assert to_iso(unmute(at("2026-02-13T18:00:00+07:00"), office, cal)) == (
        "2026-02-23T08:00:00+07:00"
    )


def test_days_off_end_when_the_next_working_day_opens(cal: WorkingCalendar) -> None:
    days_off = (MuteWindow("days_off"),)
    sunday_night = at("2026-08-30T21:00:00+07:00")  # National Day: off Mon 31 Aug to Wed 2 Sep
    assert to_iso(unmute(sunday_night, days_off, cal)) == "2026-09-03T08:00:00+07:00"
    make_up_saturday = at("2026-08-22T10:00:00+07:00")  # worked to make up for 31 August
    assert unmute(make_up_saturday, days_off, cal) == make_up_saturday
