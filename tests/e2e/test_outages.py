"""Outages end to end: the four services as processes, orders flowing, and the servers failing under them.

The fleet runs against a Kafka broker and PostgreSQL server of this module's own
(backbone.testing.private_servers), since the postmaster is SIGKILLed and the broker stopped here.
Whatever happens: every service stays up, says `degraded` on /health while it waits and `ok` once
the servers are back (one started during the outage waits for them), decides every order once (stock
reserved exactly once per order), dead-letters no good message and sends no customer message twice.

The notifier's delivery lease is short here (8 s, shorter than the outage): a send whose outcome could
not be recorded would go out again within the test.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from backbone.contracts import Topic, dead_letter_topic
from backbone.testing.background import running
from backbone.testing.fixtures import unique_name
from backbone.testing.fleet import Fleet
from backbone.testing.mailsink import MailSink
from backbone.testing.outsiders import Outsiders
from backbone.testing.private_servers import PrivateServers, private_servers
from backbone.testing.servers import Servers
from backbone.testing.waiting import eventually
from tests.e2e.fleets import e2e_fleet

pytestmark = pytest.mark.e2e

NORDWEAR = {"supplier_id": "nordwear", "lead_time_days": 10, "unit_cost": "40.00", "role": "primary"}
SCARCE_STOCK = 20


@pytest.fixture(scope="module")
async def private() -> AsyncIterator[PrivateServers]:
    async with private_servers() as pair:
        yield pair


@pytest.fixture(scope="module")
def servers(private: PrivateServers) -> Servers:
    """This module's fleet, producer and readers all use the private pair."""
    return private.servers


@pytest.fixture(scope="module")
async def fleet(servers: Servers, mail: MailSink) -> AsyncIterator[Fleet]:
    # Timeouts short and the lease shorter than the outage: a send whose outcome was lost would go again.
    settings = {"SMTP_TIMEOUT_SECONDS": "3", "WEBHOOK_TIMEOUT_SECONDS": "3", "DELIVERY_LEASE_SECONDS": "8"}
    async with e2e_fleet(servers, mail, "outage", DELIVERY_POLL_SECONDS="0.2", **settings) as f:
        yield f


@dataclass
class Flow:
    """A checkout publishing orders: one unit of a plentiful SKU each, every fourth also two of a scarce
    one (so backorders, purchase orders and e-mails happen too)."""

    shop: Outsiders
    run: str
    plenty: str
    scarce: str
    placed: list[str] = field(default_factory=list)

    @classmethod
    async def stocked(cls, shop: Outsiders, name: str) -> "Flow":
        flow = cls(shop, unique_name(name), unique_name("PLENTY"), unique_name("SCARCE"))
        await shop.stock_up(flow.plenty, 100_000)
        await shop.stock_up(flow.scarce, SCARCE_STOCK)
        await shop.set_suppliers(flow.scarce, NORDWEAR)
        return flow

    def with_scarce(self) -> list[str]:
        return [o for n, o in enumerate(self.placed) if n % 4 == 0]

    async def place(self, count: int, per_second: float) -> None:
        for _ in range(count):
            n = len(self.placed)
            order_id = f"{self.run}-{n}"
            lines = [(self.plenty, 1), *([(self.scarce, 2)] if n % 4 == 0 else [])]
            await self.shop.place_order(order_id, lines, customer=order_id)
            self.placed.append(order_id)
            await asyncio.sleep(1 / per_second)  # the checkout's pace, not a wait for anything


async def health_states(fleet: Fleet) -> dict[str, tuple[int, str] | None]:
    states: dict[str, tuple[int, str] | None] = {}
    for name, service in fleet.services.items():
        try:
            response = await fleet.http.get(f"{service.url}/health")
            states[name] = (response.status_code, response.json()["status"])
        except httpx.TransportError:
            states[name] = None
    return states


def assert_all_running(fleet: Fleet) -> None:
    for service in fleet.services.values():
        assert service.process is not None and service.process.returncode is None, (
            f"{service.name} exited; its log ends with:\n{service.log_tail()}"
        )


async def all_report(fleet: Fleet, status: str, code: int, timeout: float) -> None:
    async def probe() -> dict[str, tuple[int, str] | None] | None:
        assert_all_running(fleet)
        states = await health_states(fleet)
        return states if all(s == (code, status) for s in states.values()) else None

    await eventually(probe, timeout=timeout, interval=0.2, what=f"every service to report {status} ({code})")


async def all_decided(shop: Outsiders, order_ids: Sequence[str], timeout: float = 120.0) -> dict[str, dict]:
    views: dict[str, dict] = {}

    async def probe() -> bool:
        for order_id in order_ids:
            if order_id not in views:
                view = await shop.get_or_none("order", f"/orders/{order_id}")
                if view is None or view["status"] == "accepted":
                    return False
                views[order_id] = view
        return True

    await eventually(probe, timeout=timeout, interval=0.5, what=f"{len(order_ids)} orders to be decided")
    return views


async def dead_letters(fleet: Fleet) -> dict[str, int]:
    """Messages on each dead-letter topic of the fleet."""
    names = [dead_letter_topic(fleet.topic(t)) for t in Topic]
    consumer = AIOKafkaConsumer(bootstrap_servers=fleet.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata of every topic
        partitions = [TopicPartition(n, p) for n in names for p in consumer.partitions_for_topic(n) or ()]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {n: sum(end for tp, end in ends.items() if tp.topic == n) for n in names}


def repeated_message_ids(messages: Sequence[EmailMessage]) -> list[str]:
    ids = [str(m["Message-ID"]) for m in messages]
    return sorted({i for i in ids if ids.count(i) > 1})


async def assert_settled(shop: Outsiders, fleet: Fleet, flow: Flow) -> None:
    """Every order decided once, its customer told of a backorder, nothing dead-lettered or sent twice."""
    views = await all_decided(shop, flow.placed)
    assert all(v["lines"][0]["reserved_at_placement"] == 1 for v in views.values())
    plenty, scarce = await shop.stock(flow.plenty), await shop.stock(flow.scarce)
    assert plenty is not None and scarce is not None
    # Each order reserved exactly once, whatever was redelivered.
    assert plenty["reserved"] == len(flow.placed)
    assert (scarce["reserved"], scarce["backordered"]) == (
        SCARCE_STOCK,
        2 * len(flow.with_scarce()) - SCARCE_STOCK,
    )
    backordered = [o for o in flow.with_scarce() if views[o]["waiting_units"] > 0]
    assert backordered
    for order_id in backordered:
        await shop.emails_to(order_id, 1, timeout=90)
    dlq = await dead_letters(fleet)
    assert dlq == dict.fromkeys(dlq, 0)
    assert repeated_message_ids(shop.mail.messages) == []
    for name in fleet.services:
        assert await shop.call(name, "GET", "/outbox/parked") == []
    assert_all_running(fleet)


async def test_every_service_waits_out_a_postgres_crash_mid_flow(
    shop: Outsiders, fleet: Fleet, private: PrivateServers
) -> None:
    flow = await Flow.stocked(shop, "pgcrash")
    async with running(flow.place(200, per_second=20)) as placing:

        async def mid_flow() -> bool:
            return len(flow.placed) >= 60

        await eventually(mid_flow, timeout=60, what="the flow to be under way")
        await private.kill_postgres()
        await all_report(fleet, "degraded", 503, timeout=60)
        body = (await fleet.http.get(f"{fleet.url('order')}/health")).json()
        assert body["components"]["database"]["status"] == "degraded"
        # The API stays up too, and says when to come back.
        answer = await fleet.http.get(f"{fleet.url('order')}/orders/{flow.placed[0]}")
        assert (answer.status_code, answer.headers.get("Retry-After")) == (503, "5"), answer.text
        await private.start_postgres()
        await all_report(fleet, "ok", 200, timeout=90)
        await asyncio.wait_for(placing, 120)
    await assert_settled(shop, fleet, flow)


async def test_every_service_waits_out_a_broker_restart_mid_flow(
    shop: Outsiders, fleet: Fleet, private: PrivateServers
) -> None:
    flow = await Flow.stocked(shop, "kafkastop")
    await flow.place(150, per_second=100)  # a burst the services are still working through
    await private.stop_kafka()
    try:
        await all_report(fleet, "degraded", 503, timeout=60)
        body = (await fleet.http.get(f"{fleet.url('inventory')}/health")).json()
        assert body["components"]["kafka"]["status"] == "degraded"
        # A service (re)started while the broker is away waits for it instead of exiting.
        procurement = fleet.services["procurement"]
        await procurement.stop()
        await procurement.start()

        async def waiting_for_kafka() -> bool:
            assert_all_running(fleet)
            return "waiting for Kafka" in procurement.log_tail(20)

        await eventually(waiting_for_kafka, timeout=60, interval=0.5, what="procurement to wait for Kafka")
    finally:
        await private.start_kafka()
    await all_report(fleet, "ok", 200, timeout=120)
    await flow.place(50, per_second=50)
    await assert_settled(shop, fleet, flow)
