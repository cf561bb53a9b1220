from pathlib import Path

import pytest

from ioc.kpis import FLOWS, LEVELS, derive
from ioc.scorecard import ScorecardError, load_scorecard, parse_scorecard
from ioc.settings import PACKAGE_DATA

SHIPPED = PACKAGE_DATA / "scorecard-766.toml"


def small(**indicator: object) -> dict[str, object]:
    base = {
        "id": "2.1",
        "group": "progress",
        "name": "On time",
        "rate": "on_time_rate",
        "max": 20,
        "award": "linear",
        "source": "test",
    }
    return {
        "groups": [
            {"id": "progress", "name": "Progress", "max": 20},
            {"id": "online", "name": "Online", "max": 12, "not_measured": "catalogue"},
        ],
        "indicators": [{**base, **indicator}],
    }


def test_the_shipped_file_loads_and_every_indicator_reads_a_kpi() -> None:
    card = load_scorecard(SHIPPED)
    known = set(derive([0] * len(FLOWS), [0] * len(LEVELS), 1.0))
    assert card.indicators and all(i.rate in known and i.source for i in card.indicators)
    assert sum(g.max for g in card.groups) == 100


def test_linear_and_full_at_awards() -> None:
    card = parse_scorecard(small())
    assert card.indicators[0].points(0.9) == pytest.approx(18.0)
    full_at = parse_scorecard(small(award="full_at", at=0.5)).indicators[0]
    assert full_at.points(0.25) == pytest.approx(10.0)
    assert full_at.points(0.8) == pytest.approx(20.0)
    assert full_at.points(None) is None


def test_unmeasured_points_are_shown_as_not_measured_never_as_zero() -> None:
    card = parse_scorecard(small())
    scored = card.score({"on_time_rate": 0.5})
    online = next(g for g in scored["groups"] if g["id"] == "online")
    assert online["points"] is None
    assert online["not_measured"]["points"] == 12
    assert scored["points"] == pytest.approx(10.0)
    assert scored["measured_max"] == 20 and scored["max"] == 32


def test_an_indicator_without_dossiers_in_the_window_scores_nothing() -> None:
    scored = parse_scorecard(small()).score({"on_time_rate": None})
    progress = next(g for g in scored["groups"] if g["id"] == "progress")
    assert scored["indicators"][0]["points"] is None
    assert scored["indicators"][0]["status"] == "no dossiers in the window"
    assert progress["points"] is None and progress["scored_max"] == 0
    assert scored["points"] is None and scored["measured_max"] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"group": "nowhere"}, "unknown group 'nowhere'"),
        ({"rate": "happiness"}, "'happiness' is not a KPI"),
        ({"award": "double"}, "award must be one of"),
        ({"award": "full_at", "at": 1.5}, "'at' must be in (0, 1]"),
        ({"source": ""}, "'source' is required"),
        ({"max": 25}, "group progress: its indicators carry 25.0 > 20.0 points"),
    ],
)
def test_bad_entries_are_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(ScorecardError) as err:
        parse_scorecard(small(**change), "card.toml")
    assert message in str(err.value) and str(err.value).startswith("card.toml: ")


def test_a_missing_or_broken_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ScorecardError, match="file not found"):
        load_scorecard(tmp_path / "none.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[groups]\n", encoding="utf-8")
    with pytest.raises(ScorecardError, match="not valid TOML"):
        load_scorecard(broken)
