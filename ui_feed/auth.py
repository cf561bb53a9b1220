"""Who may do what: one token per role, checked the same way on every route.

Roles: ``read`` (REST reads and the websocket), ``ingest`` (posting events)
and ``operator`` (acknowledging alerts; an operator's token reads too). A
token comes as ``Authorization: Bearer <token>``; the read role also takes
``?token=``, because a browser cannot set headers on a websocket and the wall
page carries its token in its URL. Tokens are compared in constant time. A
role whose token is unset is open in development and closed in production
(where the settings require the read and ingest tokens).

The websocket also checks the browser's ``Origin``: allowed when absent (not
a browser), when it is the page's own origin (the scheme and host the
request was sent to), or when ``IOC_ALLOWED_ORIGINS`` lists it (default: the base URL; ``*``
for any). A refused origin is refused at the handshake (HTTP 403); a wrong
token is accepted and then closed with 1008 and the reason, so the screen
can show why.

Tokens in query strings are redacted from uvicorn's access and error logs
(``redact_tokens``).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the
# dependencies' annotations at run time, and they name closure variables.
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated
from urllib.parse import unquote_plus

from fastapi import Depends, HTTPException, WebSocket, WebSocketException
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from ioc.settings import Settings, origin_of

log = logging.getLogger(__name__)

CLOSE_POLICY = 1008  # RFC 6455: policy violation


class Role(StrEnum):
    READ = "read"
    INGEST = "ingest"
    OPERATOR = "operator"


# The tokens each role accepts.
GRANTED_BY = {
    Role.READ: (Role.READ, Role.OPERATOR),
    Role.INGEST: (Role.INGEST,),
    Role.OPERATOR: (Role.OPERATOR,),
}


def unauthorized(role: Role) -> HTTPException:
    hint = "" if role is Role.READ else " (Authorization: Bearer <token>)"
    return HTTPException(
        401, f"missing or wrong {role} token{hint}", headers={"WWW-Authenticate": "Bearer"}
    )


class Auth:
    """The tokens and origins of one API instance, and its FastAPI dependencies."""

    def __init__(self, settings: Settings) -> None:
        self._tokens = {
            Role.READ: settings.read_token,
            Role.INGEST: settings.ingest_token,
            Role.OPERATOR: settings.operator_token,
        }
        self._open = settings.env == "development"
        self._origins = frozenset(settings.origins)
        # One security scheme per way of presenting a token (named in OpenAPI).
        self._bearer = {
            role: HTTPBearer(
                auto_error=False,
                scheme_name=f"{role}Token",
                description=f"IOC_{role.upper()}_TOKEN as a bearer token"
                + (" (IOC_OPERATOR_TOKEN reads too)" if role is Role.READ else ""),
            )
            for role in Role
        }
        self._query = APIKeyQuery(
            name="token",
            auto_error=False,
            scheme_name="readTokenQuery",
            description="IOC_READ_TOKEN in the query string (the wall page's way)",
        )

    def allows(self, role: Role, presented: str | None) -> bool:
        if not self._tokens[role]:
            return self._open
        if presented is None:
            return False
        given = presented.encode()
        ok = False
        for granting in GRANTED_BY[role]:
            token = self._tokens[granting]
            # no early exit: every configured token is compared
            ok |= bool(token) and hmac.compare_digest(given, token.encode())
        return ok

    def origin_allowed(self, origin: str | None, host: str | None, scheme: str = "ws") -> bool:
        """Whether a browser page of ``origin`` may open the websocket reached
        at ``host`` over ``scheme`` (``ws``, ``wss``)."""
        if origin is None:
            return True  # not a browser: the token is its credential
        given = origin_of(origin)
        if "*" in self._origins or given in self._origins:
            return True
        # the page's own origin, scheme included (an http page of the host may
        # not read a wss socket); the browser sets both, a page cannot forge either
        page = {"ws": "http", "wss": "https"}.get(scheme.lower(), scheme.lower())
        return given is not None and host is not None and given == origin_of(f"{page}://{host}")

    # -- FastAPI dependencies ---------------------------------------------------

    def require(self, role: Role) -> Callable[..., Awaitable[None]]:
        """A dependency that lets a request through with a token of ``role``."""
        bearer = self._bearer[role]
        if role is Role.READ:
            query = self._query

            async def check_read(
                header: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                param: Annotated[str | None, Depends(query)],
            ) -> None:
                if not (self.allows(role, _credentials(header)) or self.allows(role, param)):
                    raise unauthorized(role)

            return check_read

        async def check(
            header: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        ) -> None:
            if not self._tokens[role] and not self._open:
                raise HTTPException(403, f"IOC_{role.upper()}_TOKEN is not set: {role} is off")
            if not self.allows(role, _credentials(header)):
                raise unauthorized(role)

        return check

    def require_operator(self) -> Callable[..., Awaitable[None]]:
        """The operator's actions: like ``require(Role.OPERATOR)``, but a
        valid read token is told it may not (403) rather than unknown (401)."""
        bearer = self._bearer[Role.OPERATOR]

        async def check(
            header: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        ) -> None:
            if not self._tokens[Role.OPERATOR] and not self._open:
                raise HTTPException(403, "IOC_OPERATOR_TOKEN is not set: operator is off")
            given = _credentials(header)
            if self.allows(Role.OPERATOR, given):
                return
            if given is not None and self._tokens[Role.READ] and self.allows(Role.READ, given):
                raise HTTPException(403, "the read token cannot act on alerts: operator only")
            raise unauthorized(Role.OPERATOR)

        return check

    def websocket_reader(self) -> Callable[..., Awaitable[None]]:
        """The websocket's dependency: an allowed origin, then the read token."""
        bearer, query = self._bearer[Role.READ], self._query

        async def check(
            websocket: WebSocket,
            header: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
            param: Annotated[str | None, Depends(query)],
        ) -> None:
            origin = websocket.headers.get("origin")
            host, scheme = websocket.headers.get("host"), websocket.url.scheme
            if not self.origin_allowed(origin, host, scheme):
                log.warning("websocket refused: origin %r is not allowed", (origin or "")[:100])
                # not accepted yet: the server refuses the handshake (HTTP 403)
                raise WebSocketException(CLOSE_POLICY, "origin not allowed")
            if not (self.allows(Role.READ, _credentials(header)) or self.allows(Role.READ, param)):
                # accepted first, so the screen sees the reason rather than a refused handshake
                await websocket.accept()
                raise WebSocketException(CLOSE_POLICY, "missing or wrong read token")

        return check


def _credentials(header: HTTPAuthorizationCredentials | None) -> str | None:
    return header.credentials if header is not None else None


# -- log redaction ---------------------------------------------------------------

_QUERY_PAIR = re.compile(r"([?&;])([^=&;\s\"']*)=([^&;\s\"']*)")


def _redact(text: str) -> str:
    def hide(m: re.Match[str]) -> str:
        name = unquote_plus(m.group(2)).lower()
        # any name holding "token" (access_token, id_token...): what else would it hold
        return f"{m.group(1)}{m.group(2)}=***" if "token" in name else m.group(0)

    return _QUERY_PAIR.sub(hide, text) if "token" in text.lower() or "%" in text else text


def redact_tokens(record: logging.LogRecord) -> bool:
    """Keep the values of query parameters whose name holds ``token``
    (``?token=``, ``access_token``..., however spelled) out of a log record."""
    if isinstance(record.msg, str):
        record.msg = _redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_redact(a) if isinstance(a, str) else a for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
    return True
