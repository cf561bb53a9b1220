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
import pytest

from tests.processes import Process, ioc_env, wait_until
from tests.test_alert_stage import PARTS, T0, same_partition, send, sla, start
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
    console_row(page, ident).locator(f'[data-testid="{kind}"]').click()
    page.fill('[data-testid="action-comment"]', comment)
    page.click('[data-testid="action-confirm"]')


def feed_connected(base: str) -> bool:
    """Ready but for the worker, which this test does without."""
    problems = httpx.get(f"{base}/readyz", timeout=2).json().get("problems", [])
    return not any(p.startswith("kafka") or p.startswith("database") for p in problems)


@pytest.fixture
def running(tmp_path: Path, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, str]]:
    assert Path(CHROMIUM).exists(), "Chromium is needed: scripts/test-servers installs it"
    env = ioc_env(
        tmp_path,
        kafka_bootstrap,
        database_url,
        "mqtt://127.0.0.1:1",
        IOC_CLOCK="event",
        IOC_READ_TOKEN=READ,
        IOC_OPERATOR_TOKEN=OPERATOR,
    )
    start(env, tmp_path)
    base = f"http://127.0.0.1:{env['IOC_API_PORT']}"
    stage = Process("alerts", ["alerts"], env, tmp_path / "logs")
    api = Process("api", ["api"], env, tmp_path / "logs")
    try:
        wait_until("the stage", lambda: stage.output().count("ready at offset") >= PARTS, 90)
        wait_until("the API's feed", lambda: feed_connected(base), 90)
        yield {**env, "base": base}
    finally:
        api.stop()
        stage.stop()
    for proc in (api, stage):
        assert "Traceback" not in proc.output(), proc.output()[-3000:]


def test_the_console_acknowledges_and_resolves_and_the_wall_follows(
    running: dict[str, str], kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = running["base"]
    topic = running["IOC_TOPIC_PREFIX"] + "alerts"
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


def test_a_wall_opened_later_lists_every_open_alert(
    running: dict[str, str], kafka_bootstrap: str
) -> None:
    """A wall started after the alerts opened lists each of them once (from
    GET /api/v1/alerts and the hub's channel, merged)."""
    base = running["base"]
    topic = running["IOC_TOPIC_PREFIX"] + "alerts"
    first = "H01.00166-260316-000900"
    dossiers = [first] + [same_partition(first, f"H01.00166-260316-09{i:02d}") for i in range(4)]
    send(kafka_bootstrap, topic, [sla(d, "overdue", T0 + 60 * i) for i, d in enumerate(dossiers)])
    headers = {"Authorization": f"Bearer {READ}"}
    wait_until(
        "five alerts",
        lambda: len(httpx.get(f"{base}/api/v1/alerts", headers=headers).json()["alerts"]) == 5,
        60,
    )
    with chromium_page(f"{base}/?token={READ}") as wall:
        wall.wait_for_function(
            "() => document.querySelectorAll('[data-testid=\"open-alert\"]').length === 5"
        )
        assert "5" in wall.locator('[data-testid="open-alert-count"]').inner_text()
