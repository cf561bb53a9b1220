"""The operator console and the wall in headless Chromium, against the real
alert stage and API processes on the real broker and PostgreSQL.

An overdue transition reaches the stage on the alerts topic (as the worker
sends it); the wall shows the open alert; an operator acknowledges it on the
console with the operator token (the read token is refused) and the wall
shows the new state; resolving it takes it off the wall. The time from the
console's click to the wall's change is printed, never asserted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.processes import Process, ioc_env, wait_until
from tests.test_alert_stage import PARTS, T0, send, sla, start
from tests.ui_feed.test_wall_browser import CHROMIUM, chromium, chromium_page, report

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

READ, OPERATOR = "console-read-token-01", "console-operator-tok"
WHO = "Trần Thị Bình"


def wall_alert(page: Any, ident: str, state: str, timeout: float = 30) -> None:
    page.wait_for_selector(
        f'[data-testid="open-alert"][data-alert-id="{ident}"][data-state="{state}"]',
        timeout=timeout * 1000,
    )


def console_row(page: Any, ident: str) -> Any:
    return page.locator(f'[data-testid="alert-row"][data-alert-id="{ident}"]')


def act(page: Any, ident: str, kind: str, comment: str) -> None:
    """Click the row's button, comment in the dialog it opens, confirm."""
    from playwright.sync_api import TimeoutError as NotYet

    page.wait_for_load_state("networkidle")  # no page read about to redraw the rows
    dialog = page.locator('[data-testid="action-dialog"]')
    for _ in range(3):
        console_row(page, ident).locator(f'[data-testid="{kind}"]').click()
        try:
            dialog.wait_for(state="visible", timeout=10_000)
            break
        except NotYet:
            said = page.locator('[data-testid="message"]').inner_text()
            print(f"the {kind} dialog did not open (the page says {said!r}); clicking again")
    page.fill('[data-testid="action-comment"]', comment)
    page.click('[data-testid="action-confirm"]')


def feed_connected(base: str) -> bool:
    """Ready but for the worker, which this test does without."""
    problems = httpx.get(f"{base}/readyz", timeout=2).json().get("problems", [])
    return not any(p.startswith("kafka") or p.startswith("database") for p in problems)


class Running:
    """The alert stage and an API on a fresh database and topics; the API
    can be killed and started again on the same port."""

    def __init__(self, tmp: Path, kafka: str, database: str) -> None:
        self.env = ioc_env(
            tmp,
            kafka,
            database,
            "mqtt://127.0.0.1:1",
            IOC_CLOCK="event",
            IOC_READ_TOKEN=READ,
            IOC_OPERATOR_TOKEN=OPERATOR,
        )
        start(self.env, tmp)
        self.tmp, self.database = tmp, database
        self.base = f"http://127.0.0.1:{self.env['IOC_API_PORT']}"
        self.topic = self.env["IOC_TOPIC_PREFIX"] + "alerts"
        self.stage = Process("alerts", ["alerts"], self.env, tmp / "logs")
        self.apis: list[Process] = []
        wait_until("the stage", lambda: self.stage.output().count("ready at offset") >= PARTS, 90)
        self.start_api()

    def start_api(self) -> None:
        self.apis.append(Process(f"api-{len(self.apis) + 1}", ["api"], self.env, self.tmp / "logs"))
        wait_until("the API's feed", lambda: feed_connected(self.base), 90)

    def stop(self) -> None:
        for proc in (*self.apis, self.stage):
            proc.stop()
        for proc in (self.apis[-1], self.stage):
            assert "Traceback" not in proc.output(), proc.output()[-3000:]


@pytest.fixture
def running(tmp_path: Path, kafka_bootstrap: str, database_url: str) -> Iterator[Running]:
    assert Path(CHROMIUM).exists(), "Chromium is needed: scripts/test-servers installs it"
    alive = Running(tmp_path, kafka_bootstrap, database_url)
    try:
        yield alive
    finally:
        alive.stop()


def test_the_console_acknowledges_and_resolves_and_the_wall_follows(
    running: Running, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base, topic = running.base, running.topic
    dossier = "H01.00166-260316-000777"
    send(kafka_bootstrap, topic, [sla(dossier, "overdue", T0)])

    def opened() -> str | None:
        found = httpx.get(
            f"{base}/api/v1/alerts", headers={"Authorization": f"Bearer {READ}"}
        ).json()["alerts"]
        return found[0]["id"] if found else None

    ident = wait_until("the alert in the API", opened, 60)
    with chromium() as open_page:
        wall = open_page(f"{base}/?token={READ}")
        console = open_page(f"{base}/console?token={READ}")
        wall_alert(wall, ident, "open")
        item = wall.locator(f'[data-testid="open-alert"][data-alert-id="{ident}"]')
        assert "Hồ sơ quá hạn" in item.inner_text() and dossier in item.inner_text()

        # the console, read token: it lists the alert, but acting is refused
        console.wait_for_selector(f'[data-testid="alert-row"][data-alert-id="{ident}"]')
        assert console.locator('[data-testid="token"]').input_value() == READ
        assert "token" not in console.url  # taken out of the address bar
        console.fill('[data-testid="who"]', WHO)
        console.dispatch_event('[data-testid="who"]', "change")
        act(console, ident, "ack", "thử")
        console.wait_for_function(
            "() => document.querySelector('[data-testid=\"message\"]').textContent"
            ".includes('operator token is needed')"
        )
        assert console_row(console, ident).get_attribute("data-state") == "open"

        # the operator token: acknowledged, on the console and on the wall
        console.fill('[data-testid="token"]', OPERATOR)
        console.dispatch_event('[data-testid="token"]', "change")
        console.wait_for_selector('[data-testid="link-status"][data-state="live"]')
        clicked = time.time() * 1000
        act(console, ident, "ack", "đang xử lý")
        console.wait_for_selector(
            f'[data-testid="alert-row"][data-alert-id="{ident}"][data-state="acknowledged"]'
        )
        wall_alert(wall, ident, "acknowledged")
        took = time.time() * 1000 - clicked
        report(capsys, f"console: ack click -> the wall shows it in {took:.0f} ms")
        assert WHO in item.inner_text()
        stored = httpx.get(
            f"{base}/api/v1/alerts/{ident}", headers={"Authorization": f"Bearer {READ}"}
        ).json()
        assert stored["acknowledged_by"] == WHO and stored["comment"] == "đang xử lý"

        # its history on the console
        console_row(console, ident).click()
        detail = console.locator('[data-testid="alert-detail"]')
        detail.wait_for(state="visible")
        console.wait_for_function(
            "() => document.querySelector('[data-testid=\"alert-detail\"]').textContent"
            ".includes('acknowledged')"
        )
        assert "opened" in detail.inner_text()

        # resolved: off the wall; the console's default filter keeps only active ones
        act(console, ident, "resolve", "đã trả kết quả")
        wall.wait_for_selector(
            f'[data-testid="open-alert"][data-alert-id="{ident}"]', state="detached"
        )
        assert "No open alerts" in wall.locator('[data-testid="open-alerts"]').inner_text()
        console.click('[data-testid="apply-filters"]')
        console_row(console, ident).wait_for(state="detached")
        console.select_option('[data-testid="filter-state"]', "resolved")
        console.click('[data-testid="apply-filters"]')
        console.wait_for_selector(
            f'[data-testid="alert-row"][data-alert-id="{ident}"][data-state="resolved"]'
        )

    # a new wall, after all that: it reads the open alerts (none) at start
    with chromium_page(f"{base}/?token={READ}") as wall:
        wall.wait_for_function(
            "() => document.querySelector('[data-testid=\"open-alerts\"]').textContent"
            ".includes('No open alerts')"
        )


def stored_alerts(database: str, n: int) -> None:
    """``n`` open alerts written as the stage writes them, for a wall to list."""
    with psycopg.connect(database) as conn:
        conn.execute(
            "INSERT INTO alerts (id, rule, subject, part, state, severity, opened_at, last_seen) "
            "SELECT 'al-bulk-' || g, 'dossier-overdue', 'dossier:BULK-' || g, 0, 'open', "
            "'major', now() - g * interval '1 minute', now() - g * interval '1 minute' "
            "FROM generate_series(1, %s) g",
            (n,),
        )


def test_a_wall_lists_every_active_alert_and_drops_one_resolved_while_it_was_away(
    running: Running, kafka_bootstrap: str
) -> None:
    """More active alerts than one REST page holds, all on the wall; a
    resolution its API never heard of (made while the API was down) is
    gone from the wall once it is back, even for a wall that stayed open;
    and a re-opened alert (its count up, its state back to open) shows."""
    send(kafka_bootstrap, running.topic, [sla("H01.00166-260316-000901", "overdue", T0)])
    headers = {"Authorization": f"Bearer {READ}"}
    wait_until(
        "the stage's alert",
        lambda: httpx.get(f"{running.base}/api/v1/alerts", headers=headers).json()["alerts"],
    )
    stored_alerts(running.database, 520)
    with chromium() as open_page:
        wall = open_page(f"{running.base}/?token={READ}")
        wall.wait_for_function(
            "() => document.querySelector('[data-testid=\"open-alert-count\"]')"
            ".textContent.startsWith('521')"
        )
        assert len(wall.locator('[data-testid="open-alert"]').all()) == 12  # the panel's room

        # resolved while no API ran: no change reached any feed
        running.apis[-1].kill()
        with psycopg.connect(running.database) as conn:
            conn.execute("UPDATE alerts SET state = 'resolved' WHERE id = 'al-bulk-1'")
        running.start_api()
        wall.wait_for_function(
            "() => document.querySelector('[data-testid=\"open-alert-count\"]')"
            ".textContent.startsWith('520')"
        )
        assert wall.locator('[data-alert-id="al-bulk-1"]').count() == 0

        # re-opened (as the engine does: same id, count up, open again)
        with psycopg.connect(running.database) as conn:
            conn.execute("UPDATE alerts SET state = 'open', count = 2 WHERE id = 'al-bulk-1'")
        wall.reload()  # a reload reads again, over the copy it kept
        wall.wait_for_function(
            "() => document.querySelector('[data-testid=\"open-alert-count\"]')"
            ".textContent.startsWith('521')"
        )


def test_copies_of_one_alert_are_ordered_by_its_life(running: Running) -> None:
    """The merge rule of ui_feed/static/alerts.js, in the browser that runs it."""
    with chromium() as open_page:
        page = open_page(f"{running.base}/?token={READ}")
        got = page.evaluate(
            """() => {
              const A = window.IocAlerts, m = new Map();
              const base = {id: "a", count: 1, step: 1, last_seen: "2026-03-16T09:00:00+07:00"};
              const seen = [];
              for (const copy of [
                {...base, state: "open"},
                {...base, state: "acknowledged"},
                {...base, state: "open"},                 // older: refused
                {...base, state: "resolved"},
                {...base, state: "acknowledged"},         // older: refused
                {...base, state: "open", count: 2},       // re-opened: taken
                {...base, state: "resolved"},             // the first life: refused
              ]) seen.push(A.merge(m, copy) ? m.get("a").state + m.get("a").count : "-");
              return seen;
            }"""
        )
    assert got == ["open1", "acknowledged1", "-", "resolved1", "-", "open2", "-"]
