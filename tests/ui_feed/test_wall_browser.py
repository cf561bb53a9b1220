"""The wall page in headless Chromium against the real worker and API
processes on the real broker and PostgreSQL.

It measures how long a receipt posted over HTTP takes to change the
received tile (printed, never asserted: the time depends on the machine),
and checks behaviour only: the figures stay on screen, marked stale, while
the API is dead; a new API resumes them in place; a reload shows the last
figures before the websocket is up, and, with the page's service worker,
even while the API is down. Two quick ones serve the page from an API
without its feed: what it says before it has any figures."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ioc.settings import Settings
from ioc.testing import receipt
from tests.conftest import new_database
from tests.processes import Process, ioc_env, wait_until
from tests.ui_feed.serving import serving

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
SAMPLES = 10
TILE = '[data-testid="tile-received"]'
STATUS = '[data-testid="connection-status"]'
STALE = '[data-testid="stale-note"]'
COMMUNES = '[data-testid="commune-table"] tbody tr'
AGENCIES = '[data-testid="agency-table"] tbody tr'

# Installed before the page's own script. It notes every change of the
# received tile's value with the page's clock at that moment (Date.now, the
# same system clock as the test's time.time), and the link state then: the
# test reads these notes afterwards, so its polling adds nothing to a time.
RECORDER = """
window.__tile = [];
new MutationObserver((records) => {
  for (const r of records) {
    const value = r.target.getAttribute("data-value");
    if (r.target.dataset.testid !== "tile-received" || value === r.oldValue) continue;
    const status = document.querySelector('[data-testid="connection-status"]');
    window.__tile.push({ value, at: Date.now(), link: status ? status.dataset.state : null });
  }
}).observe(document, { subtree: true, attributes: true, attributeOldValue: true,
                       attributeFilter: ["data-value"] });
"""


class Pipeline:
    """A worker and an API on a fresh database and topics; the API can die
    and be started again on the same port."""

    def __init__(self, tmp: Path, kafka: str, database: str) -> None:
        self.env = ioc_env(
            tmp,
            kafka,
            database,
            "mqtt://127.0.0.1:1883",  # no bridge here
            IOC_CLOCK_START="2026-03-16T08:00:00+07:00",
            IOC_CLOCK_ANCHOR=time.time(),
        )
        self.base = f"http://127.0.0.1:{self.env['IOC_API_PORT']}"
        self.logs = tmp / "logs"
        self.worker = Process("worker", ["worker"], self.env, self.logs)
        self.apis: list[Process] = []
        self.received = 0  # receipts posted, so the received tile's value
        self.start_api()
        wait_until("the worker's partitions", lambda: "partition 3 ready" in self.worker.output())

    def start_api(self) -> None:
        self.apis.append(Process(f"api-{len(self.apis) + 1}", ["api"], self.env, self.logs))
        wait_until(
            "the API to be ready",
            lambda: httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200,
            90,
        )

    def kill_api(self) -> None:
        self.apis[-1].kill()

    def post_receipt(self) -> int:
        """One new dossier of the day at commune 00166; the new received count."""
        n = self.received
        event = receipt(f"WALL-{n}", f"2026-03-16T08:{n // 60:02d}:{n % 60:02d}+07:00")
        r = httpx.post(f"{self.base}/api/v1/procedure-events", json=event, timeout=10)
        assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
        self.received += 1
        return self.received

    def stop(self) -> None:
        codes = {p.name: p.stop() for p in [*reversed(self.apis), self.worker]}
        for p in [self.worker, *self.apis]:
            assert "Traceback" not in p.output(), p.output()[-3000:]
        # the APIs before the last were killed on purpose
        assert codes[self.worker.name] == 0 and codes[self.apis[-1].name] == 0, codes


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Pipeline]:
    assert Path(CHROMIUM).exists(), "Chromium is needed: scripts/test-servers installs it"
    with new_database() as database:
        running = Pipeline(tmp_path_factory.mktemp("wall"), kafka_bootstrap, database)
        try:
            yield running
        finally:
            running.stop()


@contextmanager
def chromium() -> Iterator[Callable[[str], Any]]:
    """A headless Chromium: call what it yields with a URL to open a page
    on it. An error in any page's script fails the test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        errors: list[str] = []

        def open_page(url: str) -> Any:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.add_init_script(RECORDER)
            page.goto(url)
            return page

        try:
            yield open_page
            assert errors == [], errors
        finally:
            browser.close()


@contextmanager
def chromium_page(url: str) -> Iterator[Any]:
    with chromium() as open_page:
        yield open_page(url)


def tile_reaches(page: Any, value: int, timeout: float = 30) -> float:
    """When (epoch ms, by the page's clock) the tile first showed ``value``."""
    page.wait_for_function(
        "v => window.__tile.some(n => n.value === v)", arg=str(value), timeout=timeout * 1000
    )
    return float(page.evaluate("v => window.__tile.find(n => n.value === v).at", str(value)))


def wait_link(page: Any, test: str, timeout: float = 60) -> None:
    """Until the connection state (``link`` in ``test``) passes ``test``."""
    page.wait_for_function(
        f"(link => {test})(document.querySelector('{STATUS}').dataset.state)",
        timeout=timeout * 1000,
    )


def wait_live(page: Any, timeout: float = 60) -> None:
    """Connected, and the figures no longer marked stale."""
    wait_link(page, "link === 'connected' && !document.body.hasAttribute('data-stale')", timeout)


def shown(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            f"""() => ({{
                value: document.querySelector('{TILE}').dataset.value,
                text: document.querySelector('{TILE} .value').textContent,
                link: document.querySelector('{STATUS}').dataset.state,
                stale: document.body.hasAttribute('data-stale'),
                note: document.querySelector('{STALE}').hidden
                    ? '' : document.querySelector('{STALE}').textContent,
                communes: document.querySelectorAll('{COMMUNES}').length,
                agencies: document.querySelectorAll('{AGENCIES}').length,
            }})"""
        )
    )


def assert_kept_and_stale(page: Any, value: int) -> None:
    now = shown(page)
    assert now["value"] == str(value) and now["text"] == str(value), now
    assert now["stale"] and now["link"] in ("connecting", "reconnecting"), now
    assert "Stale since" in now["note"], now
    assert now["communes"] > 0 and now["agencies"] > 0, now


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    print(line)
    with capsys.disabled():
        print(f"\n{line}")


@pytest.mark.parametrize(
    ("token", "link", "says"),
    [("s3cret-read-token", "connected", "Waiting for figures"), ("wrong", "refused", "refused")],
    ids=["no-figures-yet", "token-refused"],
)
def test_without_figures_the_wall_says_why(token: str, link: str, says: str) -> None:
    assert Path(CHROMIUM).exists(), "Chromium is needed: scripts/test-servers installs it"
    with (
        serving(Settings(read_token="s3cret-read-token")) as (base, _),
        chromium_page(f"{base}/?token={token}") as page,
    ):
        wait_link(page, f"link === '{link}'", timeout=20)
        waiting = page.locator('[data-testid="waiting"]')
        assert waiting.is_visible() and says in waiting.inner_text()
        assert not page.locator(STALE).is_visible()


@pytest.mark.integration
@pytest.mark.slow
def test_the_wall_follows_posted_receipts_and_resumes_after_an_api_restart(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    with chromium_page(f"{pipeline.base}/") as page:
        wait_link(page, "link === 'connected'")
        # the first receipt creates the channels; it is not one of the samples
        tile_reaches(page, pipeline.post_receipt())
        times = []
        spacing = random.Random(7)
        for _ in range(SAMPLES):
            # Past the worker's pacing of KPI updates (IOC_KPI_UPDATES_PER_SECOND,
            # 2 by default: the first change after a quiet spell goes out at once),
            # and irregular: a fixed cadence would keep the same phase against any
            # periodic wait on the way (a fetch's poll), always hitting or missing it.
            page.wait_for_timeout(spacing.uniform(700, 1300))
            sent = time.time() * 1000
            times.append(tile_reaches(page, pipeline.post_receipt()) - sent)
        report(
            capsys,
            f"wall: POST -> received tile over {len(times)} receipts: "
            f"p50 {statistics.median(times):.0f} ms, max {max(times):.0f} ms "
            f"(all: {', '.join(f'{t:.0f}' for t in times)})",
        )
        last = pipeline.received

        # The API dies: the figures stay, marked stale, and the page says so.
        pipeline.kill_api()
        wait_link(page, "link !== 'connected'", timeout=20)
        page.wait_for_selector(STALE, state="visible")
        assert_kept_and_stale(page, last)
        page.wait_for_timeout(2000)  # a few reconnection attempts fail meanwhile
        assert_kept_and_stale(page, last)

        # A new API: the page reconnects by itself, resumes and updates in place.
        started = time.time() * 1000
        pipeline.start_api()
        ready = time.time() * 1000
        wait_live(page)
        live = time.time() * 1000  # by polling: a bound, not a measure
        now = shown(page)
        assert now["value"] == str(last) and now["note"] == "", now
        sent = time.time() * 1000
        after_restart = tile_reaches(page, pipeline.post_receipt()) - sent
        report(
            capsys,
            f"wall: a new API was ready {ready - started:.0f} ms after its start, the wall "
            f"live again by {live - started:.0f} ms; then POST -> tile {after_restart:.0f} ms",
        )
        notes = page.evaluate("window.__tile")
        # never blank, never back: no empty or partial snapshot reached the tile
        assert all(n["value"] for n in notes), notes
        values = [int(n["value"]) for n in notes]
        assert values == sorted(values), notes

        # A reload shows the last figures before the websocket is up.
        page.reload()
        page.wait_for_function("window.__tile.length > 0")
        first = page.evaluate("window.__tile[0]")
        assert first["value"] == str(pipeline.received) and first["link"] != "connected", first
        wait_live(page)
        assert shown(page)["value"] == str(pipeline.received)


@pytest.mark.integration
@pytest.mark.slow
def test_a_reload_while_the_api_is_down_shows_the_last_figures(pipeline: Pipeline) -> None:
    if httpx.get(f"{pipeline.base}/wall-sw.js", timeout=5).status_code != 200:
        pytest.skip("the API does not serve the wall's service worker at /wall-sw.js")
    with chromium_page(f"{pipeline.base}/") as page:
        page.wait_for_function("navigator.serviceWorker.controller !== null")
        wait_live(page)
        tile_reaches(page, pipeline.post_receipt())

        pipeline.kill_api()
        wait_link(page, "link !== 'connected'", timeout=20)
        page.reload()  # from the service worker's copy: the API is gone
        page.wait_for_selector(STALE, state="visible")
        assert_kept_and_stale(page, pipeline.received)

        pipeline.start_api()
        wait_live(page)
        assert shown(page)["value"] == str(pipeline.received)
