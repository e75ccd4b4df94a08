"""A real SMTP server that keeps what it receives: for tests, the demo and `make run`.

In a test it runs in the test's event loop (`async with MailSink.serving() as sink`) and the test reads
`sink.messages`. As a process (`python -m backbone.testing.mailsink --smtp-port 1025 --http-port 8025
--maildir .state/mail`) it stands in for the shop's mail relay on a developer machine: every message is
also written to a Maildir, and GET /messages on the HTTP port lists them as JSON (GET /health answers 200).
"""

import argparse
import asyncio
import contextlib
import mailbox
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class MailSink:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port; the bound one is in `port` once serving
    maildir: Path | None = None
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        message = message_from_bytes(raw, policy=default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        if self.maildir is not None:
            mailbox.Maildir(self.maildir, create=True).add(raw)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator["MailSink"]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(self, hostname="mailsink"), self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()


def summary(message: EmailMessage) -> dict[str, Any]:
    body = message.get_body(preferencelist=("plain", "html"))
    return {
        "message_id": message["Message-ID"],
        "to": message["To"],
        "subject": message["Subject"],
        "date": message["Date"],
        "body": body.get_content() if body is not None else "",
    }


async def _serve(smtp_port: int, http_port: int, maildir: Path) -> None:
    import uvicorn
    from fastapi import FastAPI

    sink = MailSink(port=smtp_port, maildir=maildir)
    for key, message in mailbox.Maildir(maildir, create=True).items():  # what arrived before a restart
        parsed = message_from_bytes(message.as_bytes(), policy=default)
        assert isinstance(parsed, EmailMessage), key
        sink.messages.append(parsed)
    app = FastAPI(title="backorder mail sink")
    app.get("/health")(lambda: {"status": "ok", "smtp_port": sink.port})
    app.get("/messages")(lambda: [summary(m) for m in sink.messages])
    async with sink.serving():
        config = uvicorn.Config(app, host="127.0.0.1", port=http_port, log_level="warning")
        await uvicorn.Server(config).serve()


def main() -> None:
    parser = argparse.ArgumentParser(description="An SMTP server that keeps what it receives.")
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--http-port", type=int, default=8025)
    parser.add_argument("--maildir", type=Path, default=Path(".state/mail"))
    args = parser.parse_args()
    asyncio.run(_serve(args.smtp_port, args.http_port, args.maildir))


if __name__ == "__main__":
    main()
