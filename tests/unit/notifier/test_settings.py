"""The notifier's settings: read from the environment, and refused when they contradict themselves or would
send customer data or credentials unprotected."""

import json
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.notifier.app import NotifierSettings
from services.notifier.domain import RetryPolicy

DATABASE = "postgresql://notifier@127.0.0.1/notifier"
TOKEN_SECRET = "t" * 40
HOOK_SECRET = "whsec-" + "k" * 40


def notifier_settings(**overrides: Any) -> NotifierSettings:
    return NotifierSettings(database_url=DATABASE, auth_token_secret=TOKEN_SECRET, **overrides)


def test_environment_variables_configure_smtp_webhooks_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", DATABASE)
    monkeypatch.setenv("AUTH_TOKEN_SECRET", TOKEN_SECRET)
    monkeypatch.setenv("SMTP_HOST", "mail.internal")
    monkeypatch.setenv("SMTP_PORT", "465")
    monkeypatch.setenv("SMTP_USE_TLS", "true")
    monkeypatch.setenv("SMTP_USERNAME", "notifier")
    monkeypatch.setenv("SMTP_PASSWORD", "relay-password")
    monkeypatch.setenv("SMTP_SENDER", "Shop <orders@shop.example>")
    monkeypatch.setenv(
        "SHOP_WEBHOOKS",
        json.dumps({"shop-1": {"url": "https://shop-1.example/hooks/notify", "secret": HOOK_SECRET}}),
    )
    monkeypatch.setenv("RETRY_FIRST_DELAY_SECONDS", "10")
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("BACKORDER_ETA_GRACE_SECONDS", "60")
    settings = NotifierSettings()
    assert (settings.service_name, settings.smtp_host, settings.smtp_port) == (
        "notifier",
        "mail.internal",
        465,
    )
    assert (settings.smtp_use_tls, settings.smtp_starttls, settings.smtp_tls) == (True, False, True)
    assert settings.sender_address == "orders@shop.example"
    assert settings.webhook_url("shop-1") == "https://shop-1.example/hooks/notify"
    webhook = settings.webhook_for("shop-1")
    assert webhook is not None and webhook.secret.get_secret_value() == HOOK_SECRET
    assert HOOK_SECRET not in repr(settings)  # a secret, like the SMTP password
    assert settings.webhook_url("shop-2") is None and settings.webhook_for("shop-2") is None
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
        ({"retry_multiplier": 0.5}, "retry_multiplier"),
        ({"delivery_concurrency": 0}, "delivery_concurrency"),
        (
            {"smtp_use_tls": True, "smtp_starttls": True},
            r"SMTP_USE_TLS \(implicit TLS, port 465\) and SMTP_STARTTLS .* exclude each other",
        ),
    ],
)
def test_contradictory_or_invalid_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        notifier_settings(**overrides)


def test_an_smtp_login_without_tls_is_refused_unless_explicitly_allowed() -> None:
    credentials = {"smtp_username": "notifier", "smtp_password": "relay-password"}
    with pytest.raises(ValidationError) as refused:
        notifier_settings(**credentials)
    message = str(refused.value)
    assert "SMTP_USERNAME/SMTP_PASSWORD would cross the network unencrypted" in message
    assert "SMTP_STARTTLS=true (port 587) or SMTP_USE_TLS=true (port 465)" in message
    assert "SMTP_ALLOW_PLAINTEXT_LOGIN=true" in message
    # Either kind of TLS, or the explicit permission, lets it start.
    assert notifier_settings(**credentials, smtp_starttls=True, smtp_port=587).smtp_tls
    assert notifier_settings(**credentials, smtp_use_tls=True, smtp_port=465).smtp_tls
    allowed = notifier_settings(**credentials, smtp_allow_plaintext_login=True)
    assert (allowed.smtp_tls, allowed.smtp_allow_plaintext_login) == (False, True)
    # Without a login there is nothing to protect: an unauthenticated relay needs no TLS setting.
    assert not notifier_settings().smtp_tls


def test_the_plaintext_permission_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "DATABASE_URL": DATABASE,
        "AUTH_TOKEN_SECRET": TOKEN_SECRET,
        "SMTP_USERNAME": "notifier",
        "SMTP_PASSWORD": "relay-password",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="unencrypted"):
        NotifierSettings()
    monkeypatch.setenv("SMTP_ALLOW_PLAINTEXT_LOGIN", "true")
    assert NotifierSettings().smtp_allow_plaintext_login


@pytest.mark.parametrize(
    ("webhooks", "message"),
    [
        # The form before webhooks were signed: refused with what to write instead.
        (
            {"shop-1": "https://shop-1.example/hooks"},
            r"SHOP_WEBHOOKS\['shop-1'\] is a bare URL: webhook calls are signed now, give "
            r'\{"url": "<that URL>", "secret": "<at least 32 characters',
        ),
        (
            {"shop-1": {"url": "https://shop-1.example/hooks"}},
            "shop-1\n.*has no secret: every webhook call is signed",
        ),
        ({"shop-1": {"url": "https://shop-1.example/hooks", "secret": ""}}, "has no secret"),
        (
            {"shop-1": {"url": "https://shop-1.example/hooks", "secret": "short"}},
            "shorter than 32 characters",
        ),
        ({"shop-1": {"url": "not a url", "secret": HOOK_SECRET}}, r"shop_webhooks\.shop-1\.url"),
        (
            {"shop-1": {"url": "http://shop-1.example/hooks", "secret": HOOK_SECRET}},
            "is not https: plain http is accepted for localhost only",
        ),
        ({"shop-1": {"url": "https://s.example", "secret": HOOK_SECRET, "extra": 1}}, "Extra inputs"),
    ],
)
def test_a_webhook_without_a_usable_secret_or_over_plain_http_is_refused(
    webhooks: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        notifier_settings(shop_webhooks=webhooks)


def test_plain_http_is_accepted_for_a_receiver_on_this_machine() -> None:
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]:9000/hook"):
        settings = notifier_settings(shop_webhooks={"s": {"url": url, "secret": HOOK_SECRET}})
        assert settings.webhook_url("s") == url
