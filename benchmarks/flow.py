"""`make bench`: orders through all four services, at increasing rates, as a checkout system sends them.

Starts its own fleet (the four services as separate processes, fresh databases and topics) against the
local Kafka and PostgreSQL, stocks the SKUs, then for each offered rate publishes OrderPlaced messages
for a fixed time and measures, per order, the latency from publishing OrderPlaced to the order service's
status update (the moment its read model leaves "accepted": inventory decided every line and the order
service applied it). Prints, per step, the sustained throughput (orders completed / time from the first
send to the last completion) and p50/p95/p99 latency. The ramp stops at the first step that cannot keep
up (p99 over the limit or orders still unfinished after the drain time).
"""

import argparse
import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from backbone.contracts import Topic, new_envelope
from backbone.contracts.events import Customer, OrderLine, OrderPlaced
from backbone.kafka import reliable_producer
from backbone.log import configure_logging
from backbone.testing.fleet import Fleet, running_fleet
from backbone.testing.mailsink import MailSink
from backbone.testing.servers import real_servers, state_dir

TIERS = ("standard", "standard", "standard", "silver", "gold", "platinum")


@dataclass(frozen=True)
class Step:
    offered: int  # orders/s
    sent: int
    completed: int
    seconds: float  # first send -> last completion
    latencies: Sequence[float]  # seconds, of completed orders

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def line(self) -> str:
        return (
            f"{self.offered:>7,}/s offered  {self.throughput:>8,.0f}/s sustained  "
            f"p50 {self.percentile(50) * 1000:>7,.0f} ms  p95 {self.percentile(95) * 1000:>7,.0f} ms  "
            f"p99 {self.percentile(99) * 1000:>7,.0f} ms  ({self.completed:,}/{self.sent:,} done)"
        )


def make_order(run: str, number: int, skus: Sequence[str], rng: random.Random) -> OrderPlaced:
    customer_id = f"{run}-c{number % 5000}"
    lines = [
        OrderLine(line_id=str(n), sku=sku, quantity=rng.randint(1, 3), unit_price=Decimal("19.90"))
        for n, sku in enumerate(rng.sample(skus, rng.randint(1, 3)), start=1)
    ]
    return OrderPlaced(
        order_id=f"{run}-o{number}",
        customer=Customer(
            customer_id=customer_id, email=f"{customer_id}@bench.example", tier=rng.choice(TIERS)
        ),
        lines=lines,
        placed_at=datetime.now(UTC),
    )


async def stock_skus(fleet: Fleet, skus: Sequence[str], scarce: set[str]) -> None:
    """Plenty of stock, except the scarce SKUs (they backorder, so procurement and notifier work too)."""
    inventory = fleet.url("inventory")
    limits = asyncio.Semaphore(16)

    async def stock(sku: str) -> None:
        async with limits:
            body = {"delta": 20 if sku in scarce else 1_000_000, "reason": "bench"}
            response = await fleet.http.post(f"{inventory}/skus/{sku}/adjustments", json=body)
            response.raise_for_status()

    await asyncio.gather(*(stock(s) for s in skus))


async def decided_at(conn: asyncpg.Connection, order_ids: Sequence[str]) -> dict[str, float]:
    """Epoch seconds at which each order's status left 'accepted', for those that did."""
    rows = await conn.fetch(
        "SELECT order_id, extract(epoch FROM status_changed_at)::float8 AS at FROM orders"
        " WHERE order_id = ANY($1::text[]) AND status <> 'accepted'",
        list(order_ids),
    )
    return {r["order_id"]: r["at"] for r in rows}


async def run_step(
    fleet: Fleet,
    order_db: asyncpg.Connection,
    rate: int,
    seconds: float,
    drain: float,
    number: int,
    run: str,
    skus: Sequence[str],
    rng: random.Random,
) -> tuple[Step, int]:
    producer = reliable_producer(fleet.kafka_bootstrap)
    await producer.start()
    topic = fleet.topic(Topic.ORDERS)
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    try:
        total = int(rate * seconds)
        pending_acks = []
        for i in range(total):
            due = started + i / rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            order = make_order(run, number + i, skus, rng)
            envelope = new_envelope(order)
            sent_at[order.order_id] = time.time()
            pending_acks.append(
                await producer.send(
                    topic, envelope.to_json(), key=envelope.key.encode(), headers=envelope.headers()
                )
            )
        await asyncio.gather(*pending_acks)
    finally:
        await producer.stop()
    first_send = min(sent_at.values())
    completed: dict[str, float] = {}
    deadline = time.monotonic() + drain
    while len(completed) < len(sent_at) and time.monotonic() < deadline:
        waiting = [o for o in sent_at if o not in completed]
        completed.update(await decided_at(order_db, waiting))
        await asyncio.sleep(0.1)  # a measuring poll, not a test wait
    latencies = [max(0.0, at - sent_at[o]) for o, at in completed.items()]
    last = max(completed.values(), default=first_send)
    step = Step(rate, len(sent_at), len(completed), last - first_send, latencies)
    return step, number + len(sent_at)


async def main(rates: Sequence[int], seconds: float, drain: float, sku_count: int, p99_limit: float) -> None:
    configure_logging("bench", "WARNING")
    run = f"bench{uuid.uuid4().hex[:6]}"
    rng = random.Random(7)
    skus = [f"{run}-SKU-{n:04}" for n in range(sku_count)]
    scarce = set(rng.sample(skus, max(1, sku_count // 20)))
    with real_servers() as servers:
        async with MailSink().serving() as mail:
            env = {"LOG_LEVEL": "WARNING"}
            notifier_env = {"SMTP_HOST": mail.host, "SMTP_PORT": str(mail.port)}
            log_dir = state_dir() / "bench" / run
            async with running_fleet(
                servers, run, log_dir, env=env, service_env={"notifier": notifier_env}
            ) as fleet:
                await stock_skus(fleet, skus, scarce)
                order_db = await asyncpg.connect(fleet.services["order"].env["DATABASE_URL"])
                print(f"{len(skus)} SKUs ({len(scarce)} scarce), {seconds:.0f} s per step; logs in {log_dir}")
                number = 0
                try:
                    for rate in rates:
                        step, number = await run_step(
                            fleet, order_db, rate, seconds, drain, number, run, skus, rng
                        )
                        print(step.line(), flush=True)
                        if step.completed < step.sent or step.percentile(99) > p99_limit:
                            print(f"stopping the ramp: the system does not keep up with {rate}/s")
                            break
                finally:
                    await order_db.close()
                print(f"e-mails received by the mail sink: {len(mail.messages):,}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rates", default="100,250,500,750,1000,1500", help="orders/s per step")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    parser.add_argument("--drain", type=float, default=60.0, help="how long to wait for stragglers")
    parser.add_argument("--skus", type=int, default=500)
    parser.add_argument("--p99-limit", type=float, default=5.0, help="seconds; stop the ramp above it")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    asyncio.run(
        main([int(r) for r in args.rates.split(",")], args.seconds, args.drain, args.skus, args.p99_limit)
    )
