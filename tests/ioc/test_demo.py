"""The demo's pure helpers (the demo itself runs end to end in
tests/test_demo.py and tests/test_demo_supervision.py; its supervisor is
tested in test_supervisor.py)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from ioc.clock import to_iso
from ioc.demo import office_opening, write_addresses
from tests.streams.helpers import vn, world


def test_the_demo_clock_starts_at_the_opening_of_the_office_day() -> None:
    _, calendar = world()
    assert to_iso(office_opening(vn("2026-03-17 15:20"), calendar)) == "2026-03-17T08:00:00+07:00"


def test_weekends_and_holidays_start_on_the_last_working_day() -> None:
    _, calendar = world()
    # Sunday
    assert to_iso(office_opening(vn("2026-03-22 10:00"), calendar)) == "2026-03-20T08:00:00+07:00"
    # 1 May (Friday) and 30 April are holidays
    assert to_iso(office_opening(vn("2026-05-01 10:00"), calendar)) == "2026-04-29T08:00:00+07:00"


def test_the_addresses_file_is_for_a_shell_and_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "demo.env"
    path.write_text("stale\n")
    url = "postgresql://postgres:@/ioc_demo?host=/tmp/a dir/pg"
    mqtt = "mqtt://ioc@127.0.0.1:1"
    write_addresses(path, {"IOC_DATABASE_URL": url, "IOC_MQTT_URL": mqtt, "IOC_INGEST_TOKEN": "x"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shell = subprocess.run(
        ["sh", "-c", f'. "{path}"; printf "%s|%s" "$IOC_DATABASE_URL" "$IOC_MQTT_URL"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout == f"{url}|{mqtt}"
    assert "TOKEN" not in path.read_text()
