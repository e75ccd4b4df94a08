"""The email channel keeps its connections to the mail relay open between messages, and never lets a
kept connection lose or fail a message: one that idled too long, or broke on an error, is replaced."""

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from backbone.testing.mailsink import MailSink
from services.notifier.channels import DeliveryFailure, EmailChannel
from tests.unit.notifier.test_channels import notification
from tests.unit.notifier.test_settings import notifier_settings

pytestmark = pytest.mark.integration
REFUSED = "nobody@example.com"


@dataclass
class CountingSink(MailSink):
    """Counts the connections (each greets with EHLO once) and refuses one mailbox for good."""

    greetings: list[str] = field(default_factory=list)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.greetings.append(hostname)
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[Any]
    ) -> str:
        if address == REFUSED:
            return "550 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_messages_share_a_connection_until_it_idles_too_long_or_fails() -> None:
    async with CountingSink().serving() as sink:
        clock = Clock()
        channel = EmailChannel(notifier_settings(smtp_host=sink.host, smtp_port=sink.port), clock)
        try:
            for address in ("ada@example.com", "bob@example.com", "cy@example.com"):
                await channel.send(notification(address), address)
            assert (len(sink.messages), len(sink.greetings)) == (3, 1)

            clock.now += EmailChannel.MAX_IDLE_SECONDS  # idle too long: not trusted, a new connection
            await channel.send(notification(), "ada@example.com")
            assert (len(sink.messages), len(sink.greetings)) == (4, 2)

            with pytest.raises(DeliveryFailure) as refused:
                await channel.send(notification(REFUSED), REFUSED)
            assert refused.value.permanent and "550 no such mailbox" in refused.value.reason
            await channel.send(notification(), "ada@example.com")  # after an error: a new connection
            assert (len(sink.messages), len(sink.greetings)) == (5, 3)
        finally:
            await channel.aclose()


async def test_a_kept_connection_found_closed_when_used_is_replaced_for_the_same_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with CountingSink().serving() as sink:
        channel = EmailChannel(notifier_settings(smtp_host=sink.host, smtp_port=sink.port))
        try:
            await channel.send(notification(), "ada@example.com")
            (kept,) = channel._idle
            await kept.client.quit()  # the relay ended the session...
            # ...and the channel takes it anyway (the close raced with the send)
            monkeypatch.setattr(channel, "_take", lambda: kept)
            await channel.send(notification("bob@example.com"), "bob@example.com")
            assert [m["X-Notification-ID"] is not None for m in sink.messages] == [True, True]
            assert "bob@example.com" in str(sink.messages[-1]["To"])
            assert len(sink.greetings) == 2
        finally:
            await channel.aclose()
