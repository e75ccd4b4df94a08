"""The notifier's settings (environment variables; documented in README.md and here, field by field)."""

from datetime import timedelta
from email.utils import parseaddr
from typing import Self

from pydantic import Field, HttpUrl, SecretStr, field_validator, model_validator

from backbone.contracts.types import Identifier
from backbone.settings import ServiceSettings
from services.notifier.domain import RetryPolicy


class NotifierSettings(ServiceSettings):
    """Every field is an environment variable of the same name in capitals (e.g. SMTP_HOST)."""

    service_name: str = "notifier"

    # Email, through the shop's mail relay.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_sender: str = Field(
        default="Customer service <notifications@example.com>",
        description="From header; its domain also names the Message-IDs",
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(default=False, description="Require STARTTLS (never negotiated silently)")
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, description="For one whole SMTP delivery")

    # Webhooks: a shop listed here gets its customers' messages as a JSON POST instead of emails.
    shop_webhooks: dict[Identifier, HttpUrl] = Field(
        default_factory=dict, description='JSON object, e.g. {"shop-1": "https://shop-1.example/hooks"}'
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, description="For one whole webhook call")

    # Retries of a refused or failed delivery: exponential backoff, then NotificationFailed.
    retry_first_delay_seconds: float = Field(default=30.0, gt=0)
    retry_multiplier: float = Field(default=2.0, ge=1)
    retry_max_delay_seconds: float = Field(default=3600.0, gt=0)
    retry_max_attempts: int = Field(default=8, ge=1, le=100)

    # A backordered line whose ETA procurement has not given within the grace period is announced
    # without a date (a later date follows as eta_changed).
    backorder_eta_grace_seconds: float = Field(default=900.0, ge=0)
    announcement_interval_seconds: float = Field(default=10.0, gt=0, description="How often overdue ones go")

    # The delivery workers: one lane per channel, so a dead mail relay does not hold up webhooks.
    delivery_poll_seconds: float = Field(default=1.0, gt=0, description="How often a lane looks for due rows")
    delivery_concurrency: int = Field(default=8, ge=1, le=256, description="Sends in flight per channel")
    delivery_lease_seconds: float = Field(
        default=300.0, gt=0, description="How long a claimed row is another instance's to leave alone"
    )

    @field_validator("smtp_sender")
    @classmethod
    def _sender_has_an_address(cls, value: str) -> str:
        _, address = parseaddr(value)
        if "@" not in address or address.startswith("@") or address.endswith("@"):
            raise ValueError(f"{value!r} has no email address, e.g. 'Shop <orders@shop.example>'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("SMTP_USERNAME and SMTP_PASSWORD go together")
        # The lease must outlast any send, or a second instance could send a row still in flight.
        longest = max(self.smtp_timeout_seconds, self.webhook_timeout_seconds)
        if self.delivery_lease_seconds < 2 * longest:
            raise ValueError(
                f"DELIVERY_LEASE_SECONDS must be at least twice the longest timeout ({longest}s)"
            )
        _ = self.retry_policy  # RetryPolicy checks its own combination
        return self

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            first_delay=timedelta(seconds=self.retry_first_delay_seconds),
            multiplier=self.retry_multiplier,
            max_delay=timedelta(seconds=self.retry_max_delay_seconds),
            max_attempts=self.retry_max_attempts,
        )

    @property
    def backorder_eta_grace(self) -> timedelta:
        return timedelta(seconds=self.backorder_eta_grace_seconds)

    def webhook_for(self, shop_id: str) -> str | None:
        url = self.shop_webhooks.get(shop_id)
        return str(url) if url is not None else None

    @property
    def sender_address(self) -> str:
        return parseaddr(self.smtp_sender)[1]
