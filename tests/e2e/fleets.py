"""The fleet every end-to-end module runs: the four services against the given servers and a mail sink."""

import contextlib
from collections.abc import AsyncIterator

from backbone.testing.fixtures import unique_name
from backbone.testing.fleet import Fleet, running_fleet
from backbone.testing.mailsink import MailSink
from backbone.testing.servers import Servers, state_dir


@contextlib.asynccontextmanager
async def e2e_fleet(servers: Servers, mail: MailSink, kind: str, **notifier_env: str) -> AsyncIterator[Fleet]:
    """`notifier_env`: settings of the notifier on top of those that point it at the mail sink."""
    run = unique_name(kind)
    service_env = {
        "notifier": {
            "SMTP_HOST": mail.host,
            "SMTP_PORT": str(mail.port),
            "SMTP_SENDER": "backorders@shop.example",
            **notifier_env,
        },
        "order": {"AUTO_CANCEL_INTERVAL_SECONDS": "0.5"},
        # The replenishment review (and the overdue check) every half second: auto mode reacts at once.
        "procurement": {"OVERDUE_CHECK_INTERVAL_SECONDS": "0.5"},
    }
    log_dir = state_dir() / "test-logs" / run
    async with running_fleet(
        servers, run, log_dir, env={"CONSUMER_BATCH_SIZE": "200"}, service_env=service_env
    ) as fleet:
        yield fleet
