"""The import rules of the layout: the core imports no other package of the
project, and only adapter modules import the server libraries, so the logic
stays testable without servers."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("ioc", "streams", "alerts", "ui_feed", "simulators")
SERVER_LIBRARIES = (
    "faust",
    "psycopg",
    "psycopg_pool",
    "paho",
    "fastapi",
    "aiokafka",
    "uvicorn",
    "starlette",
    "aiosmtplib",
    "httpx",
    "aiohttp",
)
# The composition root wires every package together and starts the servers.
COMPOSITION_ROOT = {"ioc/cli.py", "ioc/demo.py"}
ADAPTERS = {
    "alerts/notify.py",
    "alerts/notify_channels.py",
    "alerts/notify_wake.py",
    "alerts/stage.py",
    "alerts/store.py",
    "streams/app.py",
    "streams/worker.py",
    "streams/partition_worker.py",
    "streams/sensor_worker.py",
    "streams/kafka.py",
    "streams/recompute.py",
    "streams/sinks/event_ids.py",
    "streams/sinks/guards.py",
    "streams/sinks/heartbeats.py",
    "streams/sinks/postgres.py",
    "streams/sinks/sensor_sink.py",
    "streams/sinks/schema.py",
    "streams/sinks/storable.py",
    "streams/sources/http_ingest.py",
    "streams/sources/mqtt_bridge.py",
    "ui_feed/alerts_api.py",
    "ui_feed/app.py",
    "ui_feed/auth.py",
    "ui_feed/feed.py",
    "ui_feed/queries.py",
    "ui_feed/rest.py",
    "ui_feed/sensors_api.py",
    "ui_feed/server.py",
    "simulators/live.py",
    "simulators/replay.py",
    "simulators/sensors.py",
}


def imports(path: Path) -> set[str]:
    """Top-level names of the modules a file imports, anywhere in it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def modules() -> list[tuple[str, set[str]]]:
    return [
        (str(p.relative_to(ROOT)), imports(p))
        for package in PROJECT
        for p in sorted((ROOT / package).rglob("*.py"))
    ]


def test_the_core_imports_no_other_package_of_the_project() -> None:
    offenders = {
        name: sorted(used & set(PROJECT[1:]))
        for name, used in modules()
        if name.startswith("ioc/") and name not in COMPOSITION_ROOT and used & set(PROJECT[1:])
    }
    assert offenders == {}


def test_only_adapters_import_server_libraries() -> None:
    offenders = {
        name: sorted(used & set(SERVER_LIBRARIES))
        for name, used in modules()
        if name not in ADAPTERS | COMPOSITION_ROOT and used & set(SERVER_LIBRARIES)
    }
    assert offenders == {}


def test_the_adapter_list_names_real_modules() -> None:
    assert all((ROOT / name).is_file() for name in ADAPTERS | COMPOSITION_ROOT)
