"""The two delivery channels: email through the mail relay (aiosmtplib) and the shop's webhook (httpx).

A send returns when the channel accepted the message, or raises `DeliveryFailure` saying why and whether
trying again can help. Both name the notification, so a receiver can drop the rare resend after a crash
between sending and recording the outcome: the email's Message-ID is derived from the notification id,
and the webhook call carries it as its Idempotency-Key.

What counts as permanent (NotificationFailed at once instead of retries): a 5xx refusal of the recipient
or of the message itself, a webhook's 400/410/413/415/422, a message that cannot be built. Everything
else -- connection errors, timeouts, 4xx SMTP replies, authentication or TLS trouble, other HTTP
statuses -- is retried: misconfiguration is fixed by an operator while the retries run, and should not
have failed every message in the meantime.

Webhook calls are signed: `Backorder-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256 with the
shop's secret of `<t>.<body>` (the body's exact bytes), made anew for each attempt. A receiver checks it
with `verify_signature` (or the lines in docs/contract.md, "Webhook calls"): the right secret proves the
call is ours and the body untouched; a timestamp outside its tolerance (5 minutes) refuses a recorded
call replayed later, and the Idempotency-Key one replayed within it.
"""

import contextlib
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
import httpx

from services.notifier.events import Notification
from services.notifier.messages import email_for, webhook_body_for
from services.notifier.settings import NotifierSettings


class DeliveryFailure(Exception):
    """The channel did not take the message; `permanent`: it never will."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


# --- email --------------------------------------------------------------------------------------------------


def message_id(notification_id: str, sender_address: str) -> str:
    """The same notification always gets the same Message-ID, in the sender's domain (RFC 5322)."""
    domain = sender_address.rpartition("@")[2] or "localhost"
    return f"<{notification_id}@{domain}>"


class _HeaderClasses(HeaderRegistry):
    """The email package makes a new class for every header it sets (HeaderRegistry.__getitem__), about
    30 us each and a dozen per message: here once per header name (our own few names)."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


_HEADERS = _HeaderClasses()
_POLICY = policy.default.clone(header_factory=_HEADERS)
_POLICY_UTF8 = policy.SMTPUTF8.clone(header_factory=_HEADERS)  # for an internationalised address


def build_email(notification: Notification, sender: str, sender_address: str, now: datetime) -> EmailMessage:
    """The email of a notification, addressed to its customer. Raises DeliveryFailure (permanent) if the
    templates or the address cannot make one: trying again would give the same result."""
    try:
        rendered = email_for(notification)
        # An internationalised address (RFC 6531) needs SMTPUTF8; aiosmtplib then asks the relay for it.
        international = not notification.email.isascii()
        message = EmailMessage(policy=_POLICY_UTF8 if international else _POLICY)
        message["From"] = sender
        username, _, domain = notification.email.rpartition("@")
        name = notification.customer_name or ""
        message["To"] = Address(display_name=name, username=username, domain=domain)
        message["Subject"] = rendered.subject
        message["Date"] = format_datetime(now)
        message["Message-ID"] = message_id(notification.notification_id, sender_address)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies, please
        message["X-Notification-ID"] = notification.notification_id
        message["X-Notification-Kind"] = notification.kind
        message.set_content(rendered.body)
    except Exception as e:  # template or header errors alike: this message cannot be made
        raise DeliveryFailure(f"message could not be built: {type(e).__name__}: {e}", permanent=True) from e
    return message


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as sent. Headers up to RFC 5322's 998-character limit stay on one line: folding at
    78 (aiosmtplib's own flattening) breaks a long Subject right after "Subject:", which readers such
    as Python's parser then show with a leading space."""
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n", max_line_length=998))


def _reply(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"


def smtp_failure(error: aiosmtplib.SMTPException) -> DeliveryFailure:
    """What an aiosmtplib error means for this message."""
    match error:
        case aiosmtplib.SMTPRecipientsRefused(recipients=refused) if refused:
            replies = "; ".join(_reply(r.code, r.message) for r in refused)
            return DeliveryFailure(
                f"recipient refused: {replies}", permanent=all(500 <= r.code < 600 for r in refused)
            )
        case aiosmtplib.SMTPRecipientRefused() | aiosmtplib.SMTPDataError():
            what = "recipient refused" if isinstance(error, aiosmtplib.SMTPRecipientRefused) else "refused"
            return DeliveryFailure(
                f"{what}: {_reply(error.code, error.message)}", permanent=500 <= error.code < 600
            )
        case aiosmtplib.SMTPResponseException():
            # Sender refused, HELO or authentication failed: the relay's or our configuration, not the
            # message's fault; retried so that an operator can fix it meanwhile.
            return DeliveryFailure(f"{type(error).__name__}: {_reply(error.code, error.message)}")
    return DeliveryFailure(f"{type(error).__name__}: {error}")


@dataclass(slots=True)
class _RelayConnection:
    client: aiosmtplib.SMTP
    sent: int = 0
    idle_since: float = 0.0


class EmailChannel:
    """Sends through connections to the mail relay that are kept open between messages, at most one idle
    per concurrent send, instead of a TCP (and TLS) handshake, EHLO and login for every message. A
    connection is used for MAX_MESSAGES messages at most and dropped after MAX_IDLE_SECONDS idle (relays
    close idle clients after a few minutes, RFC 5321 4.5.3.2.7) or after any error; a kept one the relay
    closed meanwhile is replaced by a new one for the same message, once."""

    MAX_MESSAGES = 100
    MAX_IDLE_SECONDS = 30.0

    def __init__(self, settings: NotifierSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._idle: list[_RelayConnection] = []

    async def send(self, notification: Notification, recipient: str) -> None:
        s = self._settings
        message = build_email(notification, s.smtp_sender, s.sender_address, datetime.now(UTC))
        data = wire_bytes(message)
        options = ["SMTPUTF8"] if message.policy.utf8 else None
        try:
            kept = self._take()
            if kept is not None:
                try:
                    return await self._transact(kept, recipient, data, options)
                except aiosmtplib.SMTPServerDisconnected:
                    pass  # the relay closed it while it was idle: a new connection for this message
            await self._transact(await self._open(), recipient, data, options)
        except aiosmtplib.SMTPException as e:
            raise smtp_failure(e) from e
        except OSError as e:
            raise DeliveryFailure(f"mail relay unreachable: {type(e).__name__}: {e}") from e

    async def _transact(
        self, connection: _RelayConnection, recipient: str, data: bytes, options: list[str] | None
    ) -> None:
        try:
            await connection.client.sendmail(
                self._settings.sender_address, [recipient], data, mail_options=options
            )
        except BaseException:  # also a cancellation mid-transaction: the connection's state is unknown
            connection.client.close()
            raise
        self._give_back(connection)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await connection.client.quit()

    async def _open(self) -> _RelayConnection:
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_use_tls,
            start_tls=s.smtp_starttls,  # False: never (the settings refuse a login without TLS)
            cert_bundle=s.smtp_tls_cafile,
            timeout=s.smtp_timeout_seconds,
        )
        await client.connect()
        return _RelayConnection(client)

    def _take(self) -> _RelayConnection | None:
        now = self._clock()
        while self._idle:
            connection = self._idle.pop()
            if connection.client.is_connected and now - connection.idle_since < self.MAX_IDLE_SECONDS:
                return connection
            connection.client.close()
        return None

    def _give_back(self, connection: _RelayConnection) -> None:
        connection.sent += 1
        if connection.sent >= self.MAX_MESSAGES or len(self._idle) >= self._settings.delivery_concurrency:
            connection.client.close()  # without QUIT: the relay has the message, and QUIT costs a round trip
            return
        connection.idle_since = self._clock()
        self._idle.append(connection)


# --- webhook ------------------------------------------------------------------------------------------------

# Statuses that say this request can never succeed; others (401, 403, 404, 429, 5xx...) may once fixed.
PERMANENT_HTTP_STATUSES = frozenset({400, 410, 413, 415, 422})


def webhook_failure(status: int, body: str) -> DeliveryFailure | None:
    """None if the webhook accepted the message (2xx)."""
    if 200 <= status < 300:
        return None
    excerpt = " ".join(body.split())[:300]
    return DeliveryFailure(
        f"webhook answered HTTP {status}{': ' + excerpt if excerpt else ''}",
        permanent=status in PERMANENT_HTTP_STATUSES,
    )


SIGNATURE_HEADER = "Backorder-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """A webhook call whose signature does not hold: refuse it (HTTP 401)."""


def _hmac_hex(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 of `<t>.<body>`, `t` exactly as the header carries it."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def sign_webhook(secret: str, body: bytes, timestamp: int) -> str:
    """The Backorder-Signature header of `body` sent at `timestamp` (Unix seconds)."""
    return f"t={timestamp},v1={_hmac_hex(secret, str(timestamp), body)}"


def verify_signature(
    header: str | None,
    body: bytes,
    secrets: str | Sequence[str],
    *,
    now: float,
    tolerance_seconds: float = SIGNATURE_TOLERANCE_SECONDS,
) -> int:
    """What a receiver does with a call: check its Backorder-Signature `header` against the raw `body`
    with the shop's secret (several while rotating it: any may match), and its timestamp against `now`
    (Unix seconds). Returns the timestamp; raises SignatureError saying what is wrong. Pure."""
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            signatures.append(value)
        # Other schemes (a later v2) are ignored, so that the header can grow without breaking receivers.
    if len(timestamps) != 1 or not timestamps[0].isdigit() or len(timestamps[0]) > 12:
        raise SignatureError(f"{SIGNATURE_HEADER} needs exactly one t=<unix seconds>")
    if not signatures:
        raise SignatureError(f"{SIGNATURE_HEADER} has no v1 signature")
    timestamp = int(timestamps[0])
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError(
            f"signed at {timestamp}, {abs(now - timestamp):.0f} s from now: outside the tolerance of "
            f"{tolerance_seconds:g} s (a replay, or a clock off)"
        )
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    expected = [_hmac_hex(secret, timestamps[0], body) for secret in keys]
    if not any(hmac.compare_digest(e, given.lower()) for e in expected for given in signatures):
        raise SignatureError("signature mismatch: another secret, or the body was changed")
    return timestamp


class WebhookChannel:
    def __init__(
        self, client: httpx.AsyncClient, settings: NotifierSettings, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client  # shared: keeps connections to a shop's endpoint open between messages
        self._settings = settings
        self._clock = clock

    async def send(self, notification: Notification, url: str) -> None:
        webhook = self._settings.webhook_for(notification.shop_id)
        if webhook is None:  # the shop was removed from SHOP_WEBHOOKS since the message was claimed
            raise DeliveryFailure(f"no webhook is configured for shop {notification.shop_id!r} any more")
        try:
            body = webhook_body_for(notification).encode()
        except Exception as e:  # a template error: this message cannot be made
            raise DeliveryFailure(f"body could not be built: {type(e).__name__}: {e}", permanent=True) from e
        signature = sign_webhook(webhook.secret.get_secret_value(), body, int(self._clock()))
        try:
            response = await self._client.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Idempotency-Key": notification.notification_id,
                    SIGNATURE_HEADER: signature,
                    "User-Agent": "backorder-notifier/1.0",
                },
            )
        except httpx.HTTPError as e:
            raise DeliveryFailure(f"webhook unreachable: {type(e).__name__}: {e}") from e
        if (failure := webhook_failure(response.status_code, response.text)) is not None:
            raise failure
