"""``/api/v1/alerts`` reads against PostgreSQL: the state filter (one state
or several), each alert with its rule's title, and refusals before the
database (the actions are tested with the stage in tests/test_alert_stage.py
and in the console's browser test)."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI

from alerts.tables import ensure_alert_tables
from ioc.settings import Settings
from tests.ui_feed.test_rest import TOKEN, call, get, with_servers
from ui_feed.app import create_app

ROWS = [
    ("al-1", "dossier-overdue", "dossier:D1", "open", "2026-03-16T09:00:00+07:00"),
    ("al-2", "dossier-overdue", "dossier:D2", "acknowledged", "2026-03-16T10:00:00+07:00"),
    ("al-3", "dossier-at-risk", "dossier:D3", "resolved", "2026-03-16T11:00:00+07:00"),
    ("al-4", "no-such-rule", "dossier:D4", "open", "2026-03-16T12:00:00+07:00"),
]


def stored(url: str) -> None:
    with psycopg.connect(url) as conn:
        ensure_alert_tables(conn)
        for ident, rule, subject, state, opened in ROWS:
            conn.execute(
                "INSERT INTO alerts (id, rule, subject, part, state, severity, opened_at, units) "
                "VALUES (%s, %s, %s, 0, %s, 'major', %s, '{\"commune\": \"commune:00166\"}')",
                (ident, rule, subject, state, opened),
            )


@pytest.mark.parametrize(
    ("state", "reason"),
    [("closed", "state must be among"), ("open,", "state must be among"), ("", "state must")],
)
def test_an_unknown_state_is_refused_before_the_database(state: str, reason: str) -> None:
    r = call(create_app(Settings(read_token=TOKEN)), "/api/v1/alerts", state=state)
    assert r.status_code == 400 and reason in r.json()["detail"], r.text


@pytest.mark.integration
def test_states_filter_alone_and_together_and_alerts_carry_their_titles(
    database_url: str,
) -> None:
    stored(database_url)

    async def check(app: FastAPI) -> None:
        async def ids(**params: str) -> list[str]:
            r = await get(app, "/api/v1/alerts", **params)
            assert r.status_code == 200, r.text
            return [a["id"] for a in r.json()["alerts"]]

        assert await ids() == ["al-4", "al-3", "al-2", "al-1"]  # newest opened first
        assert await ids(state="open") == ["al-4", "al-1"]
        assert await ids(state="open,acknowledged") == ["al-4", "al-2", "al-1"]
        assert await ids(state="resolved,open,acknowledged") == await ids()
        assert await ids(state="open", scope="commune:00166", limit="1") == ["al-4"]
        listed = {a["id"]: a for a in (await get(app, "/api/v1/alerts")).json()["alerts"]}
        assert listed["al-1"]["title"] == "Hồ sơ quá hạn"  # from the sample rules file
        assert listed["al-3"]["title"] == "Hồ sơ sắp đến hạn"
        assert listed["al-4"]["title"] == ""  # a rule the file no longer has
        one = (await get(app, "/api/v1/alerts/al-2")).json()
        assert one["title"] == "Hồ sơ quá hạn" and one["state"] == "acknowledged"

    with_servers(database_url, "kafka://127.0.0.1:1", check)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"limit": "²"}, "limit must be an integer"),  # a digit to str.isdigit, not to int()
        ({"limit": "١٢"}, "limit must be an integer"),  # Arabic-Indic twelve
        ({"limit": "9" * 5000}, "limit must be an integer"),  # past int()'s digit limit
        ({"offset": "9" * 5000}, "offset must be an integer"),
        ({"severity": "bogus"}, "severity must be one of info, warning, major, critical"),
    ],
)
def test_list_parameters_are_refused_before_the_database(
    params: dict[str, str], reason: str
) -> None:
    r = call(create_app(Settings(read_token=TOKEN)), "/api/v1/alerts", **params)
    assert r.status_code == 400 and reason in r.json()["detail"], r.text


OPERATOR = "operator-token-0123456"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"who": "a", "comment": "\u0000"}, "comment has no control characters"),
        ({"who": "a", "comment": "\x1b[31m"}, "comment has no control characters"),
        ({"who": "\u200b\u200b"}, "who names the operator: it is blank"),  # zero-width spaces
        ({"who": " \u2060 "}, "who names the operator: it is blank"),  # a word joiner
        ({"who": "x" * 101}, "who has at most 100 characters"),
    ],
)
def test_an_action_body_is_refused_before_the_database(body: dict[str, str], reason: str) -> None:
    import asyncio

    import httpx

    app = create_app(Settings(read_token=TOKEN, operator_token=OPERATOR))

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ioc") as c:
            return await c.post(
                "/api/v1/alerts/al-1/ack",
                json=body,
                headers={"authorization": f"Bearer {OPERATOR}"},
            )

    r = asyncio.run(send())
    assert r.status_code == 400 and reason in r.json()["detail"], r.text


def test_a_name_with_spaces_around_is_measured_without_them() -> None:
    from ui_feed.alerts_api import ActionBody

    # 99 characters between two spaces: valid, the spaces are trimmed
    assert ActionBody.model_validate({"who": " " + "x" * 99 + " "}).who.strip() == "x" * 99
