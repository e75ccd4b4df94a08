"""`make bench`: orders through all four services, at increasing rates, as a checkout system sends them.

Starts its own fleet (the four services as separate processes, fresh databases and topics) against the
local Kafka and PostgreSQL, stocks the SKUs, then for each offered rate publishes OrderPlaced messages
for a fixed time and measures, per order, the latency from publishing OrderPlaced to the order service's
status update (the moment its read model leaves "accepted": inventory decided every line and the order
service applied it). Prints, per step, the sustained throughput (orders completed / time from the first
send to the last completion) and p50/p95/p99 latency. The ramp stops at the first step that cannot keep
up (p99 over the limit or orders still unfinished after the drain time). Then, per service, the events
it stored and published and the rows it wrote per completed order, and with --peer (`make bench`) the
same ramp through the `eventsourcing` library's pipeline (benchmarks.peer) on the same PostgreSQL, and
the ratio of the two best sustained rates.

Orders are built and serialized before a step starts, so the sender's pace is the offered rate and not
the benchmark's own CPU. Completions are polled for the oldest waiting orders (at most POLL_BATCH per
poll): the time recorded is the order service's own status_changed_at, so a late poll does not change
a latency, and the poll's cost does not grow with a backlog.
"""

import argparse
import asyncio
import contextlib
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg

from backbone.cli import run as run_on_uvloop
from backbone.contracts import Topic, new_envelope
from backbone.contracts.events import Customer, OrderLine, OrderPlaced
from backbone.kafka import reliable_producer
from backbone.log import configure_logging
from backbone.testing.fleet import Fleet, ServiceProcess, running_fleet
from backbone.testing.mailsink import MailSink
from backbone.testing.servers import real_servers, state_dir
from backbone.testing.service import free_port
from backbone.testing.waiting import eventually
from benchmarks import cpu

TIERS = ("standard", "standard", "standard", "silver", "gold", "platinum")
POLL_BATCH = 2_000  # orders asked for per poll of the order read model, the oldest waiting first
SERVICES = ("order", "inventory", "procurement", "notifier")


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

    def kept_up(self, p99_limit: float) -> bool:
        """Every order finished and p99 within the limit; the ramp stops at the first step that did not."""
        return self.completed == self.sent and self.percentile(99) <= p99_limit

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
    topic = fleet.topic(Topic.ORDERS)
    total = int(rate * seconds)
    messages = []
    for i in range(total):
        order = make_order(run, number + i, skus, rng)
        envelope = new_envelope(order)
        messages.append((order.order_id, envelope.key.encode(), envelope.to_json(), envelope.headers()))
    producer = reliable_producer(fleet.kafka_bootstrap)
    await producer.start()
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    try:
        pending_acks = []
        for i, (order_id, key, value, headers) in enumerate(messages):
            due = started + i / rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            sent_at[order_id] = time.time()
            pending_acks.append(await producer.send(topic, value, key=key, headers=headers))
        await asyncio.gather(*pending_acks)
    finally:
        await producer.stop()
    first_send = min(sent_at.values())
    completed: dict[str, float] = {}
    waiting = list(sent_at)  # in sending order
    deadline = time.monotonic() + drain
    while waiting and time.monotonic() < deadline:
        completed.update(await decided_at(order_db, waiting[:POLL_BATCH]))
        waiting = [o for o in waiting if o not in completed]
        await asyncio.sleep(0.1)  # a measuring poll, not a test wait
    latencies = [max(0.0, at - sent_at[o]) for o, at in completed.items()]
    last = max(completed.values(), default=first_send)
    step = Step(rate, len(sent_at), len(completed), last - first_send, latencies)
    return step, number + len(sent_at)


_MARK = """
SELECT (SELECT coalesce(max(global_position), 0) FROM event_store) AS position,
       d.tup_inserted + d.tup_updated + d.tup_deleted AS rows, d.xact_commit + d.xact_rollback AS transactions
FROM pg_stat_database d WHERE d.datname = current_database()
"""
_EVENTS_SINCE = """
SELECT count(*) AS events, count(*) FILTER (WHERE topic IS NOT NULL) AS published
FROM event_store WHERE global_position > $1
"""
REBALANCE_SECONDS = 10.0  # for the consumer groups to hand partitions to the copies before a step
STATS_FLUSH_SECONDS = 2.0  # PostgreSQL's backends report their row counts at most once a second


@dataclass(frozen=True)
class Writes:
    """What one service's database took: events stored (and of them published), rows written (inserted,
    updated or deleted in any table: log, outbox, inbox, business keys, read models, snapshots) and
    transactions ended (each commit that wrote waits for its WAL flush)."""

    events: int
    published: int
    rows: int
    transactions: int

    def __add__(self, other: "Writes") -> "Writes":
        return Writes(
            self.events + other.events,
            self.published + other.published,
            self.rows + other.rows,
            self.transactions + other.transactions,
        )


async def mark(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow(_MARK)


async def writes_since(conn: asyncpg.Connection, start: asyncpg.Record) -> Writes:
    events = await conn.fetchrow(_EVENTS_SINCE, start["position"])
    now = await mark(conn)
    return Writes(
        events["events"],
        events["published"],
        now["rows"] - start["rows"],
        now["transactions"] - start["transactions"],
    )


def writes_table(per_service: dict[str, Writes], orders: int) -> str:
    lines = [
        f"per completed order ({orders:,} orders):  events stored   published   rows written   transactions"
    ]
    every = sum(per_service.values(), Writes(0, 0, 0, 0))
    for name, w in [*per_service.items(), ("all four services", every)]:
        lines.append(
            f"  {name:<34} {w.events / orders:>9.2f} {w.published / orders:>11.2f} {w.rows / orders:>14.1f}"
            f" {w.transactions / orders:>14.2f}"
        )
    return "\n".join(lines)


async def ramp(
    fleet: Fleet,
    rates: Sequence[int],
    seconds: float,
    drain: float,
    p99_limit: float,
    run: str,
    skus: Sequence[str],
    rng: random.Random,
    processes: Mapping[int, str],
) -> list[Step]:
    """`processes`: the services' pids and names, for the CPU table."""
    databases = {name: await asyncpg.connect(fleet.services[name].env["DATABASE_URL"]) for name in SERVICES}
    services = {**processes, os.getpid(): "bench"}
    steps: list[Step] = []
    try:
        start = {name: await mark(conn) for name, conn in databases.items()}
        cpu_start, wall_start = cpu.sample(services), time.monotonic()
        number = 0
        for rate in rates:
            step, number = await run_step(
                fleet, databases["order"], rate, seconds, drain, number, run, skus, rng
            )
            steps.append(step)
            print(step.line(), flush=True)
            if not step.kept_up(p99_limit):
                print(f"stopping the ramp: the system does not keep up with {rate}/s")
                break
        used, wall = cpu.used_between(cpu_start, cpu.sample(services)), time.monotonic() - wall_start
        await asyncio.sleep(STATS_FLUSH_SECONDS)  # let the services' backends report their rows
        written = {name: await writes_since(conn, start[name]) for name, conn in databases.items()}
        completed = max(1, sum(s.completed for s in steps))
        print(writes_table(written, completed))
        print(cpu.cpu_table(used, completed, wall))
    finally:
        for conn in databases.values():
            await conn.close()
    return steps


@contextlib.asynccontextmanager
async def more_instances(fleet: Fleet, instances: int, log_dir: Path) -> AsyncIterator[dict[int, str]]:
    """Every service `instances` times (the fleet's one and copies beside it: same database, same consumer
    group, so the topics' partitions are shared out); yields all their pids and names. Waits until each
    copy answers /health, then once more for the consumer groups to settle (a join rebalances them)."""
    copies = [
        ServiceProcess(name, {**s.env, "HTTP_PORT": str(free_port())}, log_dir / f"{name}-{n}.log")
        for name, s in fleet.services.items()
        for n in range(2, instances + 1)
    ]
    try:
        for copy in copies:
            await copy.start()
        for copy in copies:
            await eventually(
                lambda c=copy: c.healthy(fleet.http), timeout=90, what=f"{copy.name} copy healthy"
            )
        if copies:
            await asyncio.sleep(REBALANCE_SECONDS)  # a measuring pause, not a test wait
        yield {s.process.pid: s.name for s in [*fleet.services.values(), *copies] if s.process is not None}
    finally:
        for copy in copies:
            await copy.stop()


def best(steps: Sequence[Step]) -> float:
    return max((s.throughput for s in steps), default=0.0)


async def main(
    rates: Sequence[int],
    seconds: float,
    drain: float,
    sku_count: int,
    p99_limit: float,
    peer: bool,
    instances: int = 1,
) -> None:
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
            async with (
                running_fleet(
                    servers, run, log_dir, env=env, service_env={"notifier": notifier_env}
                ) as fleet,
                more_instances(fleet, instances, log_dir) as processes,
            ):
                await stock_skus(fleet, skus, scarce)
                print(
                    f"{len(skus)} SKUs ({len(scarce)} scarce), {instances} instance(s) per service,"
                    f" {seconds:.0f} s per step; logs in {log_dir}"
                )
                steps = await ramp(fleet, rates, seconds, drain, p99_limit, run, skus, rng, processes)
                print(f"e-mails received by the mail sink: {len(mail.messages):,}")
        if peer:  # after our fleet stopped: the peer has the machine to itself, as we had
            from benchmarks.peer import run_peer

            print("the same ramp through the eventsourcing library (benchmarks.peer):", flush=True)
            peer_steps = await asyncio.to_thread(
                run_peer,
                servers.pg_admin_url,
                rates,
                seconds,
                drain,
                sku_count,
                p99_limit,
                report=lambda step: print(step.line(), flush=True),
            )
            ours, theirs = best(steps), best(peer_steps)
            ratio = f"{ours / theirs:.1f}x" if theirs else "n/a"
            print(f"best sustained: backorder {ours:,.0f}/s, eventsourcing {theirs:,.0f}/s: {ratio}")


def ramp_arguments(doc: str | None, rates: str) -> argparse.ArgumentParser:
    """The options of a ramp (this one's and benchmarks.peer's), with `rates` the default steps."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    parser.add_argument("--rates", default=rates, help="orders/s per step")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    parser.add_argument("--drain", type=float, default=60.0, help="how long to wait for stragglers")
    parser.add_argument("--skus", type=int, default=500)
    parser.add_argument("--p99-limit", type=float, default=5.0, help="seconds; stop the ramp above it")
    return parser


def parse_args() -> argparse.Namespace:
    parser = ramp_arguments(__doc__, "100,250,500,750,1000,1500")
    parser.add_argument("--peer", action="store_true", help="then the same ramp through benchmarks.peer")
    parser.add_argument("--instances", type=int, default=1, help="processes per service (scale-out)")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    run_on_uvloop(  # uvloop, as the services: the sender and the mail sink share the machine with them
        main(
            [int(r) for r in args.rates.split(",")],
            args.seconds,
            args.drain,
            args.skus,
            args.p99_limit,
            args.peer,
            args.instances,
        )
    )
