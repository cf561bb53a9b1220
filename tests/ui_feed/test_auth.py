"""Roles and tokens on every route, the websocket's Origin check, tokens kept
out of uvicorn's logs, and OpenAPI off in production. Routes are reached
without servers behind them: a request that passes the token check is
answered by the next check (a bad scope: 400; a text body: 415)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ioc.settings import Settings
from tests.ui_feed.serving import serving
from ui_feed.app import create_app
from ui_feed.auth import Auth, Role

READ, INGEST, OPERATOR = "read-token-0123456", "ingest-token-0123", "operator-token-01"
TOKENS = {"read_token": READ, "ingest_token": INGEST, "operator_token": OPERATOR}


def request(
    method: str, path: str, settings: Settings | None = None, **kwargs: Any
) -> httpx.Response:
    app = create_app(settings or Settings(**TOKENS))

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ioc") as c:
            return await c.request(method, path, **kwargs)

    return asyncio.run(send())


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ({"headers": bearer(READ)}, 400),
        ({"headers": {"authorization": f"bearer {READ}"}}, 400),  # the scheme is case-blind
        ({"params": {"token": READ}}, 400),
        ({"headers": bearer(OPERATOR)}, 400),  # an operator reads too
        ({"headers": bearer(INGEST)}, 401),
        ({"params": {"token": INGEST}}, 401),
        ({"headers": bearer(READ + "x")}, 401),
        ({}, 401),
    ],
)
def test_reads_take_the_read_or_operator_token(how: dict[str, Any], status: int) -> None:
    params = {"scope": "nowhere", **how.pop("params", {})}
    r = request("GET", "/api/v1/kpis", params=params, **how)
    assert r.status_code == status, r.text
    if status == 401:
        assert r.json() == {"detail": "missing or wrong read token"}
        assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("headers", "status"),
    [(bearer(INGEST), 415), (bearer(READ), 401), (bearer(OPERATOR), 401), ({}, 401)],
)
@pytest.mark.parametrize("path", ["/api/v1/procedure-events", "/api/v1/sensor-readings"])
def test_ingest_takes_the_ingest_token_only(
    path: str, headers: dict[str, str], status: int
) -> None:
    r = request("POST", path, content="{}", headers={"content-type": "text/plain", **headers})
    assert r.status_code == status, r.text


def test_a_role_without_a_token_is_open_in_development_only() -> None:
    development = Auth(Settings())
    assert all(development.allows(role, None) for role in Role)
    production = Auth(Settings(env="production", read_token=READ, ingest_token=INGEST))
    assert not production.allows(Role.OPERATOR, None)
    assert not production.allows(Role.OPERATOR, "")
    assert production.allows(Role.READ, READ) and not production.allows(Role.READ, INGEST)


def test_docs_and_openapi_are_served_in_development_only() -> None:
    assert request("GET", "/openapi.json").status_code == 200
    assert request("GET", "/docs").status_code == 200
    production = Settings(env="production", **TOKENS)
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert request("GET", path, production).status_code == 404


def test_openapi_names_the_token_schemes() -> None:
    schema = request("GET", "/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert {"readToken", "readTokenQuery", "ingestToken"} <= set(schemes)
    ingest = schema["paths"]["/api/v1/procedure-events"]["post"]
    assert ingest["security"] == [{"ingestToken": []}]
    reads = schema["paths"]["/api/v1/kpis"]["get"]
    assert {"readToken": []} in reads["security"] and {"readTokenQuery": []} in reads["security"]


# -- the websocket's Origin --------------------------------------------------------


def ws_url(base: str, token: str = READ) -> str:
    return base.replace("http", "ws") + f"/ws?token={token}"


def opens(url: str, origin: str | None) -> bool:
    """Whether a websocket with this Origin is accepted and answers a ping."""
    try:
        with connect(url, origin=origin) as ws:  # type: ignore[arg-type]
            ws.send('{"op": "ping"}')
            return '"pong"' in str(ws.recv(timeout=10))
    except InvalidStatus as exc:
        assert exc.response.status_code == 403
        return False


@pytest.fixture(scope="module")
def default_origins() -> Iterator[str]:
    with serving(Settings(**TOKENS)) as (base, _):
        yield base


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser
        ("base", True),  # the base URL (IOC_PUBLIC_URL or host:port)
        ("http://evil.example", False),
        ("null", False),
        ("https://127.0.0.1", False),
    ],
)
def test_the_websocket_checks_the_origin(
    default_origins: str, origin: str | None, allowed: bool
) -> None:
    given = default_origins if origin == "base" else origin
    assert opens(ws_url(default_origins), given) is allowed


def test_a_page_of_its_own_origin_may_open_the_websocket(default_origins: str) -> None:
    # reached as localhost, not as the base URL's 127.0.0.1
    local = default_origins.replace("127.0.0.1", "localhost")
    assert opens(ws_url(local), local)
    assert opens(ws_url(local), default_origins)  # the base URL, from another host name
    assert not opens(ws_url(local), default_origins.replace("127.0.0.1", "elsewhere"))


def test_a_page_of_the_same_host_over_another_scheme_may_not(default_origins: str) -> None:
    local = default_origins.replace("127.0.0.1", "localhost")  # not in the allowed list
    assert not opens(ws_url(local), local.replace("http://", "https://"))
    assert not opens(ws_url(local), local.replace("http://", "ftp://"))
    # a proxy in front that took https says so; uvicorn trusts it from 127.0.0.1
    proxied = {"X-Forwarded-Proto": "https"}
    with connect(
        ws_url(local), origin=local.replace("http://", "https://"), additional_headers=proxied
    ) as ws:  # type: ignore[arg-type]
        ws.send('{"op": "ping"}')
        assert '"pong"' in str(ws.recv(timeout=10))


def test_allowed_origins_are_a_setting() -> None:
    settings = Settings(allowed_origins="https://wall.example.vn", **TOKENS)
    with serving(settings) as (base, _):
        assert opens(ws_url(base), "https://wall.example.vn")
        assert not opens(ws_url(base), "https://other.example.vn")
    with serving(Settings(allowed_origins="*", **TOKENS)) as (base, _):
        assert opens(ws_url(base), "https://other.example.vn")


def test_a_refused_origin_is_refused_before_the_token_is_looked_at(default_origins: str) -> None:
    assert not opens(ws_url(default_origins, "wrong"), "http://evil.example")
    with (
        connect(ws_url(default_origins, "wrong"), origin=None) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


# -- logs ------------------------------------------------------------------------


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_tokens_are_kept_out_of_every_uvicorn_log_line() -> None:
    capture = Capture()
    loggers = [logging.getLogger(n) for n in ("uvicorn.access", "uvicorn.error")]
    try:
        with serving(Settings(**TOKENS)) as (base, _):
            for logger in loggers:
                logger.addHandler(capture)
            with connect(ws_url(base)) as ws:
                ws.send('{"op": "ping"}')
                ws.recv(timeout=10)
            with connect(base.replace("http", "ws") + f"/ws?%74oken={READ}&x=1") as ws:
                ws.send('{"op": "ping"}')
                ws.recv(timeout=10)
            httpx.get(f"{base}/api/v1/kpis", params={"scope": "nowhere", "token": READ})
    finally:
        for logger in loggers:
            logger.removeHandler(capture)
    text = "\n".join(capture.lines)
    assert '"WebSocket /ws?token=***" [accepted]' in text  # the handshake, on uvicorn.error
    assert "/ws?%74oken=***&x=1" in text
    assert "/api/v1/kpis?scope=nowhere&token=*** HTTP/1.1" in text  # the access log
    assert READ not in text


def test_every_query_parameter_named_like_a_token_is_redacted_in_logs() -> None:
    import logging

    from ui_feed.auth import redact_tokens

    line = (
        "/ws?token=t1secret&access_token=t2secret&X-Id-Token=t3secret"
        "&my%5Ftoken=t4secret;TOKEN2=t5secret&tokens=t6secret&page=2&tok=visible"
    )
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, "GET %s", (line,), None)
    assert redact_tokens(record)
    text = record.getMessage()
    assert "secret" not in text, text
    assert "access_token=***" in text and "my%5Ftoken=***" in text
    assert "page=2" in text and "tok=visible" in text
