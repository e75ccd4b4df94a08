"""The notifier's settings: read from the environment, and refused when they contradict themselves."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.notifier.app import NotifierSettings
from services.notifier.domain import RetryPolicy

DATABASE = "postgresql://notifier@127.0.0.1/notifier"


def test_environment_variables_configure_smtp_webhooks_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", DATABASE)
    monkeypatch.setenv("SMTP_HOST", "mail.internal")
    monkeypatch.setenv("SMTP_PORT", "2525")
    monkeypatch.setenv("SMTP_SENDER", "Shop <orders@shop.example>")
    monkeypatch.setenv("SHOP_WEBHOOKS", '{"shop-1": "https://shop-1.example/hooks/notify"}')
    monkeypatch.setenv("RETRY_FIRST_DELAY_SECONDS", "10")
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("BACKORDER_ETA_GRACE_SECONDS", "60")
    settings = NotifierSettings()
    assert (settings.service_name, settings.smtp_host, settings.smtp_port) == (
        "notifier",
        "mail.internal",
        2525,
    )
    assert settings.sender_address == "orders@shop.example"
    assert settings.webhook_for("shop-1") == "https://shop-1.example/hooks/notify"
    assert settings.webhook_for("shop-2") is None
    assert settings.retry_policy == RetryPolicy(
        first_delay=timedelta(seconds=10), multiplier=2.0, max_delay=timedelta(hours=1), max_attempts=4
    )
    assert settings.backorder_eta_grace == timedelta(minutes=1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"smtp_sender": "no address"}, "has no email address"),
        ({"smtp_username": "user"}, "SMTP_USERNAME and SMTP_PASSWORD go together"),
        ({"smtp_timeout_seconds": 200.0}, "DELIVERY_LEASE_SECONDS must be at least twice"),
        ({"shop_webhooks": {"shop-1": "not a url"}}, "shop_webhooks.shop-1"),
        ({"retry_multiplier": 0.5}, "retry_multiplier"),
        ({"delivery_concurrency": 0}, "delivery_concurrency"),
    ],
)
def test_contradictory_or_invalid_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NotifierSettings(database_url=DATABASE, **overrides)  # type: ignore[arg-type]
