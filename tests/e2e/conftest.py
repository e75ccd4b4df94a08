"""One fleet of the four services, as separate processes, per test module; a real SMTP server beside it.

Each module gets its own databases, topics and ports (backbone.testing.fleet), so the figures one module
asserts (a backorder rate, an e-mail count) are never mixed with another's.
"""

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from backbone.testing.fleet import Fleet
from backbone.testing.mailsink import MailSink
from backbone.testing.outsiders import Outsiders
from backbone.testing.servers import Servers
from tests.e2e.fleets import e2e_fleet

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def mail() -> AsyncIterator[MailSink]:
    async with MailSink().serving() as sink:
        yield sink


@pytest.fixture(scope="module")
async def fleet(servers: Servers, mail: MailSink) -> AsyncIterator[Fleet]:
    async with e2e_fleet(servers, mail, "e2e") as f:
        yield f


@pytest.fixture
async def shop(fleet: Fleet, mail: MailSink, producer: AIOKafkaProducer) -> Outsiders:
    return Outsiders(fleet, producer, mail)
