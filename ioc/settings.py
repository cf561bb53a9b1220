"""Settings for every entry point, read from ``IOC_*`` environment variables.

A ``Settings`` object is built in each entry point (``ioc worker``, ``ioc api``,
...) and passed down; nothing here runs at import time.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ioc.registry import SCOPE_KINDS

PACKAGE_DATA = Path(__file__).parent / "data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IOC_", extra="ignore")

    env: Literal["development", "production"] = "development"
    log_level: str = "INFO"

    # Server addresses. ``ioc demo`` starts an embedded server for each one
    # that is unset or empty in the environment and hands its address to its
    # children; every other command uses the value, or this default.
    kafka_url: str = "kafka://127.0.0.1:9092"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    mqtt_url: str = "mqtt://127.0.0.1:1883"

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    # Where a browser reaches the API, when it differs from host:port (a proxy).
    public_url: str = ""

    topic_prefix: str = "ioc."
    procedure_partitions: int = Field(4, ge=1, le=256)
    sensor_partitions: int = Field(2, ge=1, le=256)

    province_file: Path = PACKAGE_DATA / "province-01-ha-noi.toml"
    calendar_file: Path = PACKAGE_DATA / "calendar-01-ha-noi.toml"
    stations_file: Path = PACKAGE_DATA / "stations-01-ha-noi.toml"
    scorecard_file: Path = PACKAGE_DATA / "scorecard-766.toml"
    # The alert stage (``ioc alerts``): its rules, and who hears of an alert.
    alert_rules: Path = PACKAGE_DATA / "alert-rules-01-ha-noi.toml"
    alert_routing: Path = PACKAGE_DATA / "alert-routing-01-ha-noi.toml"
    data_dir: Path = Path(".ioc")

    # Ingest: a token (``Authorization: Bearer ...``) when set; required in production.
    ingest_token: str = ""
    ingest_max_bytes: int = Field(5_000_000, ge=1_000)
    # Screens read with this token when set.
    read_token: str = ""
    # Operators' consoles: acknowledging alerts (and reading); unset, those
    # actions are refused in production.
    operator_token: str = ""
    # Browser origins allowed to open the websocket, comma-separated
    # (``scheme://host[:port]``, or ``*``); empty: ``base_url``. Read as ``origins``.
    allowed_origins: str = ""

    # The injected clock: "wall" follows real time (optionally started at
    # ``clock_start`` and run ``clock_speed`` times faster; 0 stops it at
    # ``clock_start``); "event" follows each partition's newest event time,
    # for replays.
    clock: Literal["wall", "event"] = "wall"
    clock_start: str = ""
    clock_speed: float = Field(1.0, ge=0)
    # Real epoch second at which the clock reads ``clock_start``; processes
    # given the same anchor agree on the time. Default: when the process starts.
    clock_anchor: float | None = None

    at_risk_share: float = Field(0.8, gt=0, lt=1)
    # Scope kinds kept at 1-minute resolution (every kind is kept hourly),
    # comma-separated; read as ``minute_kinds``.
    minute_series: str = "province,commune,agency"
    # How long finished dossiers stay in worker memory for late events.
    finished_retention_days: int = Field(45, ge=1)
    # Worker: events are committed as soon as they are applied, plus
    # ``commit_delay`` s to gather more into one commit (0: at once; a larger
    # delay trades latency for fewer, larger commits); with no events, the
    # worker still commits every ``flush_interval`` s for the time passing
    # (SLA transitions).
    commit_delay: float = Field(0.0, ge=0, le=10)
    flush_interval: float = Field(0.25, gt=0)
    snapshot_interval: float = Field(60.0, gt=0)
    # Longest a consumer's fetch (the worker's, the API feed's) waits for new
    # data. Kafka and Redpanda answer a waiting fetch as soon as data arrives;
    # Tansu (the demo's broker) only when the fetch covers one partition, so
    # on it this is the latency a quiet topic adds.
    fetch_max_wait: float = Field(0.02, gt=0, le=5)
    # At most this many KPI updates per second per scope and partition on
    # ioc.kpi-updates; the first change after a quiet spell goes out at once.
    kpi_updates_per_second: float = Field(10.0, gt=0)
    # The worker writes a heartbeat row (partitions, last commit, lag) this
    # often; the API's /readyz calls a worker absent after three missed
    # heartbeats and stalled when events wait longer than ``stall_seconds``.
    heartbeat_interval: float = Field(5.0, gt=0)
    stall_seconds: float = Field(30.0, gt=0)

    # Prometheus metrics of the worker and the bridge (the API serves its own
    # on /metrics). 0: not served.
    worker_metrics_port: int = Field(9101, ge=0, le=65535)
    bridge_metrics_port: int = Field(9102, ge=0, le=65535)

    # ``ioc notify``: sending decided alert deliveries (webhook, email). Each
    # attempt is cut at ``notify_timeout`` s; a failed one is retried after
    # ``notify_backoff_base * 2**(n-1)`` s (capped at ``notify_backoff_max``,
    # jittered) up to ``notify_max_attempts`` attempts. An endpoint failing
    # ``notify_breaker_failures`` times in a row is left alone for
    # ``notify_breaker_cooldown`` s, then tried once.
    notify_timeout: float = Field(10.0, gt=0, le=300)
    notify_max_attempts: int = Field(8, ge=1, le=100)
    notify_backoff_base: float = Field(2.0, gt=0)
    notify_backoff_max: float = Field(600.0, gt=0)
    notify_breaker_failures: int = Field(5, ge=1)
    notify_breaker_cooldown: float = Field(60.0, gt=0)
    # Requests in flight per endpoint, and rows queued per endpoint; a
    # webhook endpoint answering within 0.25 s may have up to
    # ``notify_max_concurrency`` in flight while rows wait for it.
    notify_concurrency: int = Field(8, ge=1, le=256)
    notify_max_concurrency: int = Field(64, ge=1, le=1024)
    notify_queue_size: int = Field(200, ge=1)
    notify_poll_interval: float = Field(1.0, gt=0, le=60)
    notify_metrics_port: int = Field(9103, ge=0, le=65535)
    # Webhook bodies are signed with this (X-IOC-Signature); required in production.
    webhook_secret: str = ""
    # Email: the SMTP server (empty host: email deliveries wait unsent).
    smtp_host: str = ""
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "ioc@localhost"
    smtp_starttls: bool = True

    # Simulators. Receipts per office hour; empty: the profile's figure.
    sim_dossiers_per_hour: float | None = Field(None, gt=0)
    sim_sensors: int = Field(24, ge=0)
    sim_sensor_period: float = Field(5.0, gt=0)
    sim_seed: int = 7
    # ``ioc simulate --scenario``: the simulated city's scenario (simulators.sensor_scenarios)
    sim_scenario: str = "normal"

    @field_validator("minute_series")
    @classmethod
    def _known_minute_kinds(cls, value: str) -> str:
        kinds = [k.strip() for k in value.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in SCOPE_KINDS]
        if unknown:
            raise ValueError(
                f"unknown scope kind(s) {', '.join(unknown)}; known: {', '.join(SCOPE_KINDS)}"
            )
        return ",".join(dict.fromkeys(kinds))

    @field_validator("kafka_url")
    @classmethod
    def _kafka_servers(cls, value: str) -> str:
        servers = value.removeprefix("kafka://").rstrip("/").split(",")
        for server in servers:
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"not a list of Kafka servers: {value!r} "
                    "(expected kafka://host:port[,host:port...])"
                )
        return value

    @field_validator("clock_start")
    @classmethod
    def _an_instant(cls, value: str) -> str:
        if value:
            try:
                when = datetime.fromisoformat(value)
            except ValueError:
                when = None
            if when is None or when.tzinfo is None:
                raise ValueError(
                    f"not an instant with an offset: {value!r} (e.g. 2026-03-16T08:00:00+07:00)"
                )
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        items = [v.strip() for v in value.split(",") if v.strip()]
        bad = [v for v in items if v != "*" and origin_of(v) is None]
        if bad:
            raise ValueError(
                f"not an origin: {', '.join(bad)} (expected scheme://host[:port], or *)"
            )
        return ",".join(dict.fromkeys("*" if v == "*" else origin_of(v) or "" for v in items))

    @property
    def origins(self) -> tuple[str, ...]:
        """The allowed browser origins, normalised; ``("*",)`` for any."""
        if self.allowed_origins:
            return tuple(self.allowed_origins.split(","))
        return (origin_of(self.base_url) or self.base_url,)

    @property
    def minute_kinds(self) -> tuple[str, ...]:
        """The scope kinds of ``minute_series``, parsed once here."""
        return tuple(k for k in self.minute_series.split(",") if k)

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.env == "production" and not self.ingest_token:
            raise ValueError("IOC_INGEST_TOKEN must be set when IOC_ENV=production")
        if self.env == "production" and len(self.ingest_token) < 16:
            raise ValueError("IOC_INGEST_TOKEN must be at least 16 characters in production")
        # screens need a read-only token (DESIGN, "Live feed"): no open reads in production
        if self.env == "production" and len(self.read_token) < 16:
            raise ValueError("IOC_READ_TOKEN must be set, 16+ characters, when IOC_ENV=production")
        if self.env == "production" and 0 < len(self.operator_token) < 16:
            raise ValueError("IOC_OPERATOR_TOKEN must be at least 16 characters in production")
        # one token per role: a screen's token must not let it post events or acknowledge alerts
        tokens = {
            "IOC_INGEST_TOKEN": self.ingest_token,
            "IOC_READ_TOKEN": self.read_token,
            "IOC_OPERATOR_TOKEN": self.operator_token,
        }
        seen: dict[str, str] = {}
        for name, token in tokens.items():
            if token and token in seen:
                raise ValueError(f"{name} must differ from {seen[token]}")
            seen.setdefault(token, name)
        return self

    @property
    def kafka_bootstrap(self) -> str:
        """``host:port[,host:port]`` from ``kafka://host:port``."""
        return self.kafka_url.removeprefix("kafka://").rstrip("/")

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::") else self.api_host  # noqa: S104
        return f"http://{host}:{self.api_port}"


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, lower-case, without a
    default port; None when it is not one (a path is allowed and dropped)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"


def settings_problems(exc: ValidationError) -> list[str]:
    """One line per refused setting, named by its variable. The values are
    left out: they may be tokens, or URLs holding passwords."""
    lines = []
    for error in exc.errors():
        field = "_".join(str(part) for part in error["loc"])
        reason = error["msg"].removeprefix("Value error, ")
        lines.append(f"IOC_{field.upper()}: {reason}" if field else reason)
    return lines
