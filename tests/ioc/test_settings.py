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


def test_the_operator_token_is_optional_but_long_in_production() -> None:
    tokens = {"ingest_token": "i" * 16, "read_token": "r" * 16}
    assert Settings(env="production", **tokens).operator_token == ""
    assert Settings(env="production", operator_token="o" * 16, **tokens).operator_token
    with pytest.raises(ValidationError, match="IOC_OPERATOR_TOKEN must be at least 16"):
        Settings(env="production", operator_token="short", **tokens)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ({"ingest_token": "same" * 4, "read_token": "same" * 4}, "IOC_READ_TOKEN must differ"),
        ({"read_token": "same" * 4, "operator_token": "same" * 4}, "IOC_OPERATOR_TOKEN must"),
        ({"ingest_token": "same" * 4, "operator_token": "same" * 4}, "IOC_OPERATOR_TOKEN must"),
    ],
)
@pytest.mark.parametrize("env", ["development", "production"])
def test_one_token_per_role(tokens: dict[str, str], message: str, env: str) -> None:
    complete = {"ingest_token": "i" * 16, "read_token": "r" * 16, **tokens}
    with pytest.raises(ValidationError, match=message):
        Settings(env=env, **complete)  # type: ignore[arg-type]


def test_allowed_origins_default_to_the_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IOC_ALLOWED_ORIGINS", "IOC_PUBLIC_URL", "IOC_API_HOST", "IOC_API_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().origins == ("http://127.0.0.1:8000",)
    assert Settings(public_url="https://IOC.example.vn:443/wall/").origins == (
        "https://ioc.example.vn",
    )


def test_allowed_origins_are_parsed_once() -> None:
    s = Settings(
        allowed_origins=" https://Wall.example.vn/ ,http://10.0.0.5:8000,https://wall.example.vn"
    )
    assert s.origins == ("https://wall.example.vn", "http://10.0.0.5:8000")
    assert Settings(allowed_origins="*").origins == ("*",)


@pytest.mark.parametrize("bad", ["wall.example.vn", "ftp://x", "http://", "http://x:99999"])
def test_an_allowed_origin_must_be_an_origin(bad: str) -> None:
    with pytest.raises(ValidationError, match="not an origin"):
        Settings(allowed_origins=bad)
