"""One fleet of the four services, as separate processes, per test module; a real SMTP server beside it.

Each module gets its own databases, topics and ports (backbone.testing.fleet), so the figures one module
asserts (a backorder rate, an e-mail count) are never mixed with another's.
"""

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from backbone.testing.fixtures import unique_name
from backbone.testing.fleet import Fleet, running_fleet
from backbone.testing.mailsink import MailSink
from backbone.testing.outsiders import Outsiders
from backbone.testing.servers import PROJECT_ROOT, Servers

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def mail() -> AsyncIterator[MailSink]:
    async with MailSink().serving() as sink:
        yield sink


@pytest.fixture(scope="module")
async def fleet(servers: Servers, mail: MailSink) -> AsyncIterator[Fleet]:
    run = unique_name("e2e")
    service_env = {
        "notifier": {
            "SMTP_HOST": mail.host,
            "SMTP_PORT": str(mail.port),
            "SMTP_SENDER": "backorders@shop.example",
        },
        "order": {"AUTO_CANCEL_INTERVAL_SECONDS": "0.5"},
    }
    log_dir = PROJECT_ROOT / ".state" / "test-logs" / run
    async with running_fleet(
        servers, run, log_dir, env={"CONSUMER_BATCH_SIZE": "200"}, service_env=service_env
    ) as f:
        yield f


@pytest.fixture
async def shop(fleet: Fleet, mail: MailSink, producer: AIOKafkaProducer) -> Outsiders:
    return Outsiders(fleet, producer, mail)
