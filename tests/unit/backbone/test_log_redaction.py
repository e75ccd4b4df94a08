"""Logs never contain customers' e-mail addresses or names: the processors `configure_logging` installs
(structlog's JSON lines) and its filter on the standard library's records, as a service runs them."""

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiosmtplib
import pytest
import structlog
from pydantic import BaseModel, ValidationError

from backbone.contracts.events import Customer
from backbone.log import REDACTED, REDACTED_EMAIL, configure_logging, redact_text
from services.notifier.channels import smtp_failure

ADDRESS, OTHER, NAME = "ada.lovelace+orders@example.com", "zoë@exämple.org", "Ada Lovelace"


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """configure_logging as a service calls it, printing to the captured stdout; restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield capsys
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.NOTSET)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def configured(capsys: pytest.CaptureFixture[str]) -> None:
    """In the test itself: pytest's capture puts the test's own stdout in place only for its call."""
    logging.getLogger().handlers.clear()  # pytest's own: basicConfig then installs the service's handler
    configure_logging("notifier", "INFO")
    capsys.readouterr()


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line.strip()]


def events(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(capsys)]


def assert_no_customer_data(text: str) -> None:
    for secret in (ADDRESS, OTHER, "ada.lovelace", "Lovelace", "s3cr3t-token"):
        assert secret not in text


def test_addresses_anywhere_in_an_event_are_redacted_and_the_rest_is_kept(
    logs: pytest.CaptureFixture[str],
) -> None:
    configured(logs)
    log = structlog.get_logger("test")
    log.warning(
        f"recipient refused: 550 5.1.1 <{ADDRESS}>: no such user",
        notification_id="n-1",
        order_id="order-7",
        attempt=3,
        permanent=True,
        error=f"SMTPRecipientRefused(550, 'unknown', '{ADDRESS}')",
        nested={"reply": [f"to {OTHER}", 5, None], "why": "mailbox full"},
    )
    (event,) = events(logs)
    assert event["event"] == f"recipient refused: 550 5.1.1 <{REDACTED_EMAIL}>: no such user"
    assert event["error"] == f"SMTPRecipientRefused(550, 'unknown', '{REDACTED_EMAIL}')"
    assert event["nested"] == {"reply": [f"to {REDACTED_EMAIL}", 5, None], "why": "mailbox full"}
    # Still useful: what, where, which notification, when, the service.
    assert (event["notification_id"], event["order_id"], event["attempt"], event["permanent"]) == (
        "n-1",
        "order-7",
        3,
        True,
    )
    assert (event["level"], event["service"]) == ("warning", "notifier")
    assert event["timestamp"].endswith("Z")


def test_values_of_keys_that_name_a_person_or_a_destination_are_redacted(
    logs: pytest.CaptureFixture[str],
) -> None:
    configured(logs)
    structlog.get_logger("test").info(
        "delivery attempted",
        email=ADDRESS,
        customer_name=NAME,
        name=NAME,
        Customer_Email=ADDRESS,  # any case, - or _
        to=[ADDRESS, OTHER],
        recipient="https://shop.example:8443/hooks/notify?token=s3cr3t-token",
        address="Flat 2, 10 Downing Street",
        webhook_url="https://shop.example/hooks/s3cr3t-token",
        display_name=None,
        customer_id="c-7",
        shop_id="webshop",
        recipient_ref="email:c-7",
        actor="alice@staff.shop.example",  # the audit trail's staff member, as their token names them
    )
    (event,) = events(logs)
    assert (event["email"], event["customer_name"], event["name"], event["Customer_Email"]) == (REDACTED,) * 4
    assert event["to"] == [REDACTED_EMAIL, REDACTED_EMAIL]
    assert event["recipient"] == f"https://shop.example:8443/{REDACTED}"  # the host only
    assert event["webhook_url"] == f"https://shop.example/{REDACTED}"
    assert event["address"] == REDACTED
    assert event["display_name"] is None  # absent stays visibly absent
    assert (event["customer_id"], event["shop_id"], event["recipient_ref"]) == ("c-7", "webshop", "email:c-7")
    assert event["actor"] == "alice@staff.shop.example"


def test_models_dataclasses_reprs_and_json_text_lose_names_and_addresses(
    logs: pytest.CaptureFixture[str],
) -> None:
    configured(logs)

    @dataclass
    class Subscriber:
        customer_id: str
        email: str
        customer_name: str

    customer = Customer(customer_id="c-7", email=ADDRESS, name=NAME, tier="gold")
    log = structlog.get_logger("test")
    log.info("placed", customer=customer, subscriber=Subscriber("c-8", OTHER, NAME))
    log.info(f"could not handle {customer!r}", row=json.dumps({"customer_name": NAME, "sku": "HAT"}))
    first, second = events(logs)
    assert first["customer"] == {"customer_id": "c-7", "email": REDACTED, "name": REDACTED, "tier": "gold"}
    assert first["subscriber"] == {"customer_id": "c-8", "email": REDACTED, "customer_name": REDACTED}
    assert second["event"] == (
        f"could not handle Customer(customer_id='c-7', email='{REDACTED}', name='{REDACTED}', tier='gold')"
    )
    assert json.loads(second["row"]) == {"customer_name": REDACTED, "sku": "HAT"}
    assert_no_customer_data(json.dumps([first, second]))


def test_exceptions_and_their_tracebacks_are_redacted(logs: pytest.CaptureFixture[str]) -> None:
    """The texts the notifier's errors really have: a relay refusing a recipient names the address."""
    configured(logs)
    refusal = aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(550, f"5.1.1 <{ADDRESS}>: Recipient address rejected", ADDRESS)]
    )
    log = structlog.get_logger("test")
    try:
        raise smtp_failure(refusal) from refusal
    except Exception as e:
        log.exception("unexpected delivery error", notification_id="n-1")
        log.error("delivery task failed", error=repr(e), exc_info=True)

    class Order(BaseModel):
        customer_name: str

    try:
        Order.model_validate({"customer_name": 7, "note": NAME})
    except ValidationError:
        log.error("message failed", exc_info=True)
    out = lines(logs)
    assert len(out) == 3
    failed, task, invalid = (json.loads(line) for line in out)
    assert "Traceback (most recent call last)" in failed["exception"]
    assert f"<{REDACTED_EMAIL}>: Recipient address rejected" in failed["exception"]
    assert "DeliveryFailure: recipient refused: 550 5.1.1" in failed["exception"]
    assert REDACTED_EMAIL in task["error"] and "Traceback" in task["exception"]
    assert f"input_value={REDACTED}, input_type=int" in invalid["exception"]
    assert_no_customer_data("\n".join(out))


def test_standard_library_records_pass_the_same_rules(logs: pytest.CaptureFixture[str]) -> None:
    """uvicorn, aiokafka, asyncpg... log through `logging`; their lines are redacted as well."""
    configured(logs)
    library = logging.getLogger("some.library")
    library.warning("refused %s for %s", ADDRESS, "name='Ada Lovelace'")
    try:
        raise RuntimeError(f"cannot deliver to {OTHER}")
    except RuntimeError:
        library.exception("task failed")
    logging.getLogger("httpx").info("HTTP Request: POST https://shop.example/hooks/s3cr3t-token 200 OK")
    logging.getLogger("httpx").warning("retrying")
    out = "\n".join(lines(logs))
    assert f"refused {REDACTED_EMAIL} for name='{REDACTED}'" in out
    assert f"RuntimeError: cannot deliver to {REDACTED_EMAIL}" in out
    assert "retrying" in out  # httpx starts at WARNING: its INFO lines carry whole webhook URLs
    assert_no_customer_data(out)


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("plain text, no address", "plain text, no address"),
        (f"mailto:{ADDRESS}.", f"mailto:{REDACTED_EMAIL}."),
        (f"email='{ADDRESS}'", f"email='{REDACTED}'"),
        (f'"to": ["{ADDRESS}"]', f'"to": ["{REDACTED_EMAIL}"]'),
        ("o'brien@example.ie wrote", f"{REDACTED_EMAIL} wrote"),
        (f"{OTHER} (internationalised)", f"{REDACTED_EMAIL} (internationalised)"),
        ("user@localhost and 10:30 @ noon", "user@localhost and 10:30 @ noon"),  # not a customer's
        ("shop_name='Winter Sale', username='ops'", "shop_name='Winter Sale', username='ops'"),
        ('name="Ada \\"the first\\" L."', f'name="{REDACTED}"'),
    ],
)
def test_what_counts_as_an_address_or_a_name(text: str, redacted: str) -> None:
    assert redact_text(text) == redacted
    assert redact_text(redacted) == redacted  # redacting twice changes nothing
