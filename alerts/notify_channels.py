"""How one delivery is sent: a signed webhook POST, or an email over SMTP.

A sender returns an ``Attempt``: whether it got through, the HTTP or SMTP
status when there was one, the reason when not, and whether trying again
could help (a 404 or a refused recipient will not get better).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiosmtplib
import orjson

# 408 Request Timeout and 429 Too Many Requests are the 4xx a later try can cure.
RETRYABLE_4XX = frozenset((408, 429))
# how much of an answer's body is read (and dropped)
_BODY_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status: int | None = None
    error: str | None = None
    retry: bool = True


@dataclass(frozen=True, slots=True)
class Row:
    """A claimed ``alert_deliveries`` row; ``lease`` is the ``next_attempt_at``
    this process set when claiming it, its proof of ownership."""

    key: str
    channel: str
    address: str
    payload: dict[str, Any]
    decided_at: float
    attempts: int
    lease: Any


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``f"{timestamp}.{body}"``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: int | str,
    body: bytes,
    header: str,
    tolerance: float | None = 300.0,
    now: float | None = None,
) -> bool:
    """For receivers: whether ``header`` (``X-IOC-Signature``) signs ``body``
    at ``timestamp`` (``X-IOC-Timestamp``) with ``secret``, and the timestamp
    is within ``tolerance`` seconds of ``now`` (None: not checked), which
    bounds how long a captured request can be replayed."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, ts, body), header or "")


def endpoint_of(channel: str, address: str, smtp: str) -> str:
    """The queue a delivery waits in: a webhook URL's origin, or the SMTP
    server every email goes through."""
    if channel == "email":
        return smtp
    try:
        parts = urlsplit(address)
    except ValueError:  # e.g. an unclosed IPv6 bracket: its send fails for good
        return "invalid address"
    return f"{parts.scheme}://{parts.netloc}".lower()


def describe(exc: BaseException) -> str:
    """A failure's reason as stored in ``last_error``: type and message."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class WebhookSender:
    """JSON POSTs to one endpoint, on its own keep-alive connection pool
    (``connections``: the endpoint's concurrency) so a slow endpoint cannot
    hold connections another needs. aiohttp rather than httpx: per request
    it costs the notifier about a fifth of the CPU, which bounds a burst."""

    def __init__(self, secret: str, timeout: float, connections: int) -> None:
        self.secret = secret
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"User-Agent": "ioc-notifier"},
        )

    async def send(self, row: Row) -> Attempt:
        body = orjson.dumps(row.payload)
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-IOC-Timestamp": str(ts),
            "X-IOC-Signature": sign(self.secret, ts, body),
            "Idempotency-Key": row.key,
        }
        try:
            # redirects are not followed: the signed body is for this URL
            async with self.session.post(
                row.address, data=body, headers=headers, allow_redirects=False
            ) as resp:
                status, reason = resp.status, resp.reason or ""
                # the answer's body is not needed; reading a short one lets
                # the connection be reused
                await resp.content.read(_BODY_READ)
        except TimeoutError:
            raise  # the notifier reports it as the attempt's timeout
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, ValueError) as exc:
            # an address no retry makes valid
            return Attempt(False, None, describe(exc), retry=False)
        except (aiohttp.ClientError, OSError) as exc:
            return Attempt(False, None, describe(exc))
        if 200 <= status < 300:
            return Attempt(True, status)
        error = f"HTTP {status} {reason}".strip()
        # like a 4xx, a redirect means the leader's address needs fixing
        if 300 <= status < 500 and status not in RETRYABLE_4XX:
            return Attempt(False, status, error, retry=False)
        return Attempt(False, status, error)

    async def close(self) -> None:
        await self.session.close()


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 587
    user: str = ""
    password: str = ""
    sender: str = "ioc@localhost"
    starttls: bool = True


def message_id(key: str, sender: str) -> str:
    """The same delivery always has the same Message-ID, so a resent copy
    threads with (and can be dropped as) the first."""
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


def render_email(row: Row, sender: str) -> EmailMessage:
    """The message: subject and a Vietnamese then English summary from the
    payload; its own ``title``/``text_vi``/``text_en`` when it has them."""
    p = row.payload if isinstance(row.payload, dict) else {}
    severity = str(p.get("severity", "")).upper()
    what = p.get("title") or p.get("rule") or "alert"
    subject = p.get("subject", "")
    msg = EmailMessage()
    msg["Subject"] = f"[IOC {severity}] {what}: {subject}".replace("\n", " ")
    msg["From"] = sender
    msg["To"] = row.address
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id(row.key, sender)
    msg["X-IOC-Idempotency-Key"] = row.key
    step = p.get("step", 0)
    vi = p.get("text_vi") or (
        f"Cảnh báo {what} (mức {severity}) cho {subject}, bước {step}."
        + (" Gửi đến đầu mối trực do không có lãnh đạo ở cấp này." if p.get("fallback") else "")
    )
    en = p.get("text_en") or (
        f"Alert {what} ({severity}) for {subject}, step {step}."
        + (" Sent to the duty office: no leader at this level." if p.get("fallback") else "")
    )
    msg.set_content(f"{vi}\n\n{en}\n\nMã cảnh báo / alert id: {p.get('alert_id', '')}\n")
    return msg


class EmailSender:
    """Email through the configured SMTP server, one connection per message."""

    def __init__(self, smtp: SmtpConfig, timeout: float) -> None:
        self.smtp = smtp
        self.timeout = timeout

    async def send(self, row: Row) -> Attempt:
        try:
            msg = render_email(row, self.smtp.sender)
        except (ValueError, TypeError) as exc:
            # an address or subject no mail header can carry: no retry cures it
            return Attempt(False, None, describe(exc), retry=False)
        try:
            await aiosmtplib.send(
                msg,
                hostname=self.smtp.host,
                port=self.smtp.port,
                username=self.smtp.user or None,
                password=self.smtp.password or None,
                start_tls=self.smtp.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            return Attempt(False, codes[0] if codes else None, describe(exc), retry=_temp(codes))
        except aiosmtplib.SMTPResponseException as exc:
            return Attempt(False, exc.code, describe(exc), retry=_temp([exc.code]))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Attempt(False, None, describe(exc))
        return Attempt(True, 250)

    async def close(self) -> None:
        return None


def _temp(codes: list[int]) -> bool:
    """SMTP 4xx replies are temporary (retry); 5xx are permanent."""
    return not codes or any(400 <= c < 500 for c in codes)
