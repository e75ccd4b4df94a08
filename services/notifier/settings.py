"""The notifier's settings (environment variables; documented in README.md and here, field by field)."""

import ipaddress
from datetime import timedelta
from email.utils import parseaddr
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from backbone.contracts.types import Identifier
from backbone.settings import ServiceSettings
from services.notifier.domain import RetryPolicy


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ShopWebhook(BaseModel):
    """One shop's endpoint: its customers' messages go there as JSON, signed with the shop's secret
    (`Backorder-Signature`, services/notifier/channels.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)  # a secret

    url: HttpUrl
    secret: SecretStr = Field(description="Shared with the shop only; signs every call (HMAC-SHA256)")

    @model_validator(mode="before")
    @classmethod
    def _has_a_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" in data and not data.get("secret"):
            raise ValueError(
                "has no secret: every webhook call is signed (header Backorder-Signature), so each shop "
                'needs {"url": "...", "secret": "<at least 32 characters, shared with the shop>"}'
            )
        return data

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < 32:
            raise ValueError(
                "the secret is shorter than 32 characters; e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`"
            )
        return secret

    @field_validator("url")
    @classmethod
    def _encrypted(cls, url: HttpUrl) -> HttpUrl:
        # The body carries the customer's e-mail address and name: a signature proves who sent it, only
        # TLS keeps it private. Plain http is for a receiver on this machine (tests, a local relay).
        if url.scheme != "https" and not _loopback(url.host):
            raise ValueError(f"{url} is not https: plain http is accepted for localhost only")
        return url


class NotifierSettings(ServiceSettings):
    """Every field is an environment variable of the same name in capitals (e.g. SMTP_HOST)."""

    # A refusal names the setting and why, never the values: they include passwords and webhook secrets.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

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
    smtp_starttls: bool = Field(
        default=False, description="Require STARTTLS, usually port 587 (never negotiated silently)"
    )
    smtp_use_tls: bool = Field(
        default=False, description="Implicit TLS from the first byte, usually port 465"
    )
    smtp_tls_cafile: str | None = Field(
        default=None, description="CA bundle to verify the relay's certificate with (default: the system's)"
    )
    smtp_allow_plaintext_login: bool = Field(
        default=False,
        description="Let SMTP_USERNAME/SMTP_PASSWORD go without TLS (a relay on a trusted network only)",
    )
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, description="For one whole SMTP delivery")

    # Webhooks: a shop listed here gets its customers' messages as a signed JSON POST instead of emails.
    shop_webhooks: dict[Identifier, ShopWebhook] = Field(
        default_factory=dict,
        description='JSON object, e.g. {"shop-1": {"url": "https://shop-1.example/hooks", "secret": "..."}}',
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

    # The backordered message's switch to a substitute: POST <ORDER_API_URL>/orders/.../substitution
    order_api_url: HttpUrl = Field(
        default=HttpUrl("http://127.0.0.1:8001"),
        description="ORDER_API_URL: the order service's base URL as customers (or the shop) reach it",
    )

    # The delivery workers: one lane per channel, so a dead mail relay does not hold up webhooks.
    delivery_poll_seconds: float = Field(default=1.0, gt=0, description="How often a lane looks for due rows")
    # A send mostly waits (SMTP round trips, the recording transaction), so the lane's rate is about
    # concurrency / send time. make bench-hot-sku (50,000 backordered orders): 8 sent about 60 e-mails/s
    # while the orders came in, 32 about 135/s, for 15 % more notifier CPU in all. A relay that limits
    # connections per client needs it at or below that limit (one connection per send in flight).
    delivery_concurrency: int = Field(default=32, ge=1, le=256, description="Sends in flight per channel")
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

    @field_validator("shop_webhooks", mode="before")
    @classmethod
    def _no_bare_urls(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for shop, target in value.items():
                if isinstance(target, str):
                    raise ValueError(
                        f"SHOP_WEBHOOKS[{shop!r}] is a bare URL: webhook calls are signed now, give "
                        '{"url": "<that URL>", "secret": "<at least 32 characters, shared with the shop>"}'
                    )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("SMTP_USERNAME and SMTP_PASSWORD go together")
        if self.smtp_use_tls and self.smtp_starttls:
            raise ValueError(
                "SMTP_USE_TLS (implicit TLS, port 465) and SMTP_STARTTLS (an upgrade, port 587) exclude "
                "each other: set one"
            )
        if self.smtp_username is not None and not self.smtp_tls and not self.smtp_allow_plaintext_login:
            raise ValueError(
                "SMTP_USERNAME/SMTP_PASSWORD would cross the network unencrypted: set SMTP_STARTTLS=true "
                "(port 587) or SMTP_USE_TLS=true (port 465); only for a relay on a trusted network, "
                "SMTP_ALLOW_PLAINTEXT_LOGIN=true"
            )
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

    @property
    def smtp_tls(self) -> bool:
        """Whether the mail relay's connection is encrypted (implicit TLS or a required STARTTLS)."""
        return self.smtp_use_tls or self.smtp_starttls

    def webhook_for(self, shop_id: str) -> ShopWebhook | None:
        return self.shop_webhooks.get(shop_id)

    def webhook_url(self, shop_id: str) -> str | None:
        webhook = self.shop_webhooks.get(shop_id)
        return str(webhook.url) if webhook is not None else None

    @property
    def sender_address(self) -> str:
        return parseaddr(self.smtp_sender)[1]
