from pathlib import Path

import pytest
from pydantic import ValidationError

from ioc.settings import Settings


def test_defaults_and_derived_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IOC_KAFKA_URL", "IOC_API_HOST", "IOC_API_PORT", "IOC_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.base_url == "http://127.0.0.1:8000"
    assert Settings(api_host="0.0.0.0", api_port=9000).base_url == "http://127.0.0.1:9000"
    assert Settings(public_url="https://ioc.example.vn/").base_url == "https://ioc.example.vn"


def test_settings_come_from_ioc_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOC_KAFKA_URL", "kafka://broker-1:9092,broker-2:9092")
    monkeypatch.setenv("IOC_PROCEDURE_PARTITIONS", "8")
    monkeypatch.setenv("IOC_DATA_DIR", "/var/lib/ioc")
    s = Settings()
    assert s.kafka_bootstrap == "broker-1:9092,broker-2:9092"
    assert s.procedure_partitions == 8
    assert s.data_dir == Path("/var/lib/ioc")


@pytest.mark.parametrize(
    ("token", "message"),
    [("", "IOC_INGEST_TOKEN must be set"), ("short", "at least 16 characters")],
)
def test_production_needs_a_real_ingest_token(token: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(env="production", ingest_token=token, read_token="r" * 16)
    assert Settings(env="production", ingest_token="x" * 16, read_token="r" * 16).env


@pytest.mark.parametrize("token", ["", "short"])
def test_production_needs_a_real_read_token(token: str) -> None:
    with pytest.raises(ValidationError, match="IOC_READ_TOKEN must be set, 16"):
        Settings(env="production", ingest_token="x" * 16, read_token=token)


@pytest.mark.parametrize(
    "bad",
    [{"api_port": 70000}, {"clock_speed": -1}, {"at_risk_share": 1.0}, {"clock": "sundial"}],
)
def test_out_of_range_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]
