"""``ioc demo`` end to end: it starts every server and process, the
websocket delivers KPI updates, a real browser shows numbers changing on the
wall page, and Ctrl-C stops every child."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from websockets.asyncio.client import connect

from tests.conftest import free_port
from tests.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"


async def kpi_updates(url: str, wanted: int, within: float) -> list[dict]:
    got: list[dict] = []
    async with connect(url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channels": ["kpi/province"]}))
        deadline = time.monotonic() + within
        while len(got) < wanted:
            message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            if message.get("channel") == "kpi/province":
                got.append(message)
    return got


def wall_values(
    url: str, seconds: float
) -> tuple[list[tuple[str | None, str | None, str | None]], list[str]]:
    """(connection state, received tile, IOC clock) read by Chromium over
    ``seconds``, and then the labels of the settling-agency table."""
    from playwright.sync_api import sync_playwright

    seen = []
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
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            seen.append(
                (
                    page.get_attribute('[data-testid="connection-status"]', "data-state"),
                    page.get_attribute('[data-testid="tile-received"]', "data-value"),
                    page.get_attribute('[data-testid="ioc-clock"]', "data-at"),
                )
            )
            page.wait_for_timeout(1000)
        agencies = page.locator('[data-testid="agency-table"] tbody td.c-label').all_inner_texts()
        browser.close()
    assert errors == [], errors
    return seen, agencies


def test_the_demo_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "Chromium is needed: scripts/test-servers installs it"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env.update({"IOC_DATA_DIR": str(tmp_path / "demo"), "IOC_API_PORT": str(port)})
    # busier than a real province, so that the received tile surely moves
    # while the page is watched, at any hour the demo clock reaches
    env["IOC_SIM_DOSSIERS_PER_HOUR"] = "600"
    out = tmp_path / "demo.out"
    with out.open("wb") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "ioc.cli", "demo"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    children: set[int] = set()
    try:
        wait_until("the wall URL", lambda: "Wall screen:" in out.read_text(), timeout=150)
        assert f"http://127.0.0.1:{port}/" in out.read_text()
        children = {c.pid for c in psutil.Process(demo.pid).children(recursive=True)}
        # broker, MQTT, worker, alerts, bridge, API, simulator (+ postgres)
        assert len(children) >= 7

        updates = asyncio.run(kpi_updates(f"ws://127.0.0.1:{port}/ws", wanted=3, within=120))
        received = [u["data"]["windows"]["today"]["received"] for u in updates]
        assert received[-1] > 0

        seen, agencies = wall_values(f"http://127.0.0.1:{port}/", seconds=12)
        assert seen[-1][0] == "connected"
        tiles = [int(v) for _, v, _ in seen if v]
        assert tiles and tiles[-1] > tiles[0], f"the received tile did not move: {seen}"
        clock = [float(at) for _, _, at in seen if at]
        assert clock and clock[-1] > clock[0], f"the IOC clock did not move: {seen}"
        # agencies by name (from the province file), not by id
        assert agencies and any(name.startswith(("UBND", "Sở")) for name in agencies), agencies
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(90)
    text = out.read_text()
    assert code == 0, text[-3000:]
    assert "stopped." in text
    alive = [
        pid
        for pid in children
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == [], f"children still running: {alive}"
