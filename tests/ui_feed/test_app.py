"""Read-token rules of the API, checked before any server is touched (the
app's lifespan, which connects to PostgreSQL and Kafka, does not run here;
tests/test_pipeline.py runs the whole API against real servers)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ioc.settings import Settings
from ui_feed.app import create_app

TOKEN = "wall-screen-token"


def get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    app = create_app(Settings(read_token=TOKEN))

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ioc") as c:
            return await c.get(path, headers=headers)

    return asyncio.run(send())


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/kpis?scope=province",
        "/api/v1/kpis/series?scope=province",
        "/api/v1/scorecard?scope=province",
        "/api/v1/dossiers/D-1",
    ],
)
@pytest.mark.parametrize(
    "headers",
    [None, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}],
    ids=["none", "wrong", "not-bearer"],
)
def test_reads_need_the_read_token(path: str, headers: dict[str, str] | None) -> None:
    r = get(path, headers)
    assert r.status_code == 401 and "read token" in r.json()["detail"]


def test_health_and_the_wall_page_need_no_token() -> None:
    assert get("/healthz").json() == {"status": "ok"}
    page = get("/")
    assert page.status_code == 200 and "data-testid" in page.text


def test_a_websocket_without_the_token_is_told_why_it_is_closed() -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from tests.ui_feed.serving import serving

    with (
        serving(Settings(read_token=TOKEN)) as (base, _),
        connect(base.replace("http", "ws") + "/ws?token=wrong") as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason == "missing or wrong read token"


def test_the_read_token_is_kept_out_of_the_access_log() -> None:
    import logging

    from ui_feed.auth import redact_tokens

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', None, None
    )
    record.args = ("127.0.0.1:5000", "GET", "/ws?x=1&token=s3cret-s3cret&y=2", "1.1", 101)
    assert redact_tokens(record)
    assert "s3cret" not in record.getMessage() and "token=***&y=2" in record.getMessage()
