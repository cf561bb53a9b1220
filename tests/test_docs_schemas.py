"""The JSON Schemas committed under docs/schemas are what ``ioc schema`` prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from ioc.cli import main

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"


@pytest.mark.parametrize("kind", ["procedure-event", "sensor-reading"])
def test_committed_schema_matches_the_command(
    kind: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``main`` builds Settings; production mode would demand an ingest token
    monkeypatch.setenv("IOC_ENV", "development")
    assert main(["schema", kind]) == 0
    printed = capsys.readouterr().out
    path = SCHEMAS / f"{kind}.schema.json"
    committed = path.read_text(encoding="utf-8")
    assert printed == committed, (
        f"docs/schemas/{path.name} is out of date; regenerate it with "
        f"`.venv/bin/ioc schema {kind} > docs/schemas/{path.name}`"
    )
