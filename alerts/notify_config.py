"""The notifier's configuration, from the ``IOC_NOTIFY_*``, ``IOC_WEBHOOK_*``
and ``IOC_SMTP_*`` settings (defaults and meanings in ``ioc/settings.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alerts.notify_channels import SmtpConfig


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    timeout: float = 10.0
    max_attempts: int = 8
    backoff_base: float = 2.0
    backoff_max: float = 600.0
    breaker_failures: int = 5
    breaker_cooldown: float = 60.0
    concurrency: int = 8
    # in flight to an endpoint that answers within ``quick_answer`` s
    max_concurrency: int = 64
    quick_answer: float = 0.25
    queue_size: int = 200
    batch: int = 100
    poll_interval: float = 1.0
    # at stop, how long sends in flight may finish before they are cut
    grace: float = 5.0
    # what a lease adds to the longest it can take (database round trips, a
    # busy event loop): the at-least-once window after a crash is about this
    lease_margin: float = 30.0
    webhook_secret: str = ""
    smtp: SmtpConfig = field(default_factory=lambda: SmtpConfig(host=""))

    @property
    def lease(self) -> float:
        """How long a claimed row stays ours: its wait in a full queue at the
        concurrency limit of timed-out sends, plus a margin."""
        return self.timeout * (self.queue_size / self.concurrency + 1) + self.lease_margin

    @property
    def send_lease(self) -> float:
        # every send is cut at ``timeout``: the lease outlives it
        return self.timeout + self.lease_margin

    @classmethod
    def from_settings(cls, s: Any) -> NotifyConfig:
        return cls(
            timeout=s.notify_timeout,
            max_attempts=s.notify_max_attempts,
            backoff_base=s.notify_backoff_base,
            backoff_max=s.notify_backoff_max,
            breaker_failures=s.notify_breaker_failures,
            breaker_cooldown=s.notify_breaker_cooldown,
            concurrency=s.notify_concurrency,
            max_concurrency=s.notify_max_concurrency,
            queue_size=s.notify_queue_size,
            poll_interval=s.notify_poll_interval,
            webhook_secret=s.webhook_secret,
            smtp=SmtpConfig(
                host=s.smtp_host,
                port=s.smtp_port,
                user=s.smtp_user,
                password=s.smtp_password,
                sender=s.smtp_from,
                starttls=s.smtp_starttls,
            ),
        )
