"""`make bench-hot-sku`: one SKU everybody wants; does the cost of an order stay flat while its queue grows?

Starts its own fleet (the four services as separate processes, fresh databases and topics) against the
local Kafka and PostgreSQL, stocks ONE SKU with a few units and gives it a supplier catalogue (so the
shortfall is backordered, procurement buys and every waiting line gets an ETA), then publishes one-unit
OrderPlaced messages for it in blocks, as a checkout system would (each block at once). Per block it
prints the queue reached (waiting lines, GET /stock/{sku}), the time from the block's first send until
every order of the block is decided (its status in the order service's read model left "accepted": the
inventory reserved or backordered the line and the order service applied it, as `make bench` measures),
orders/s, how many of the block's backordered lines already show an ETA in the order read model at that
moment (procurement keeping up), and the inventory's GET /health latency p50/p99 while the block ran
(one probe every --probe-interval on a fixed schedule, so a stalled service cannot hide behind a slow
probe; a probe that times out counts at the timeout). At the end: each service's memory, whether each
process is still alive, and the last block's time over the second's (flat cost: <= 1.2).
"""

import argparse
import asyncio
import contextlib
import multiprocessing
import multiprocessing.synchronize
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from aiosmtpd.smtp import SMTP, Envelope, Session

from backbone.cli import run as run_on_uvloop
from backbone.contracts import Topic, new_envelope
from backbone.contracts.events import Customer, OrderLine, OrderPlaced
from backbone.kafka import reliable_producer
from backbone.log import configure_logging
from backbone.testing.fleet import Fleet, ServiceProcess, running_fleet
from backbone.testing.outsiders import Outsiders
from backbone.testing.servers import real_servers, state_dir
from backbone.testing.service import free_port
from benchmarks.cpu import process_seconds
from benchmarks.flow import decided_at

# The primary wins; the alternate is sooner but too dear, so procurement weighs both on every plan.
SUPPLIERS = (
    {"supplier_id": "hot-primary", "lead_time_days": 14, "unit_cost": "40.00", "role": "primary"},
    {"supplier_id": "hot-alternate", "lead_time_days": 5, "unit_cost": "46.00", "role": "alternate"},
)
POLL_SECONDS = 0.2  # how often the order read model is asked which orders are decided


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank, as `make bench` reports it."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- the shop's mail relay: counts only, in its own process so 50,000 e-mails do not load the probe ---


class _CountingSink:
    def __init__(self, count: "Synchronized[int]") -> None:
        self.count = count

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.count.get_lock():
            self.count.value += 1
        return "250 OK"


def _serve_counting_sink(
    port: int, count: "Synchronized[int]", ready: multiprocessing.synchronize.Event
) -> None:
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(_CountingSink(count), hostname="mailsink"), "127.0.0.1", port
        )
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


@contextlib.asynccontextmanager
async def mail_sink() -> AsyncIterator[tuple[int, "Synchronized[int]"]]:
    """(SMTP port, messages received so far)."""
    spawn = multiprocessing.get_context("spawn")
    port, count, ready = free_port(), spawn.Value("q", 0), spawn.Event()
    process = spawn.Process(target=_serve_counting_sink, args=(port, count, ready), daemon=True)
    process.start()
    try:
        if not await asyncio.to_thread(ready.wait, 30.0):
            raise RuntimeError("the mail sink did not start")
        yield port, count
    finally:
        process.terminate()
        await asyncio.to_thread(process.join, 10.0)


# --- measuring ------------------------------------------------------------------------------------------


@dataclass
class HealthProbe:
    """GET /health on a fixed schedule (not one after the other), concurrently if answers are slow."""

    url: str
    interval: float
    timeout: float
    latencies: list[float] = field(default_factory=list)  # seconds; a timeout counts as `timeout`
    timeouts: int = 0
    failures: int = 0  # not 200, or no connection (a dead service)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=int(self.timeout / self.interval) + 10)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:
            probes: set[asyncio.Task[None]] = set()
            due = time.monotonic()
            while not self._stop.is_set():
                probe = asyncio.create_task(self._probe(client))
                probes.add(probe)
                probe.add_done_callback(probes.discard)
                due += self.interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), max(0.0, due - time.monotonic()))
            await asyncio.gather(*probes)

    async def _probe(self, client: httpx.AsyncClient) -> None:
        started = time.perf_counter()
        try:
            # httpx's timeout bounds each phase (pool, connect, read), not the whole request
            async with asyncio.timeout(self.timeout):
                response = await client.get(self.url)
        except (TimeoutError, httpx.TimeoutException):
            self.timeouts += 1
            self.latencies.append(self.timeout)
            return
        except httpx.TransportError:
            self.failures += 1
            return
        self.latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            self.failures += 1

    def stop(self) -> None:
        self._stop.set()


@dataclass(frozen=True)
class Block:
    number: int
    sent: int
    decided: int
    seconds: float  # first send -> last decision (or -> the deadline)
    queue: int | None  # waiting lines on the SKU once the block was decided
    with_eta: int  # the block's backordered lines already showing an ETA in the order read model
    backordered: int
    probe: HealthProbe

    @property
    def rate(self) -> float:
        return self.decided / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        p50, p99 = (percentile(self.probe.latencies, p) * 1000 for p in (50, 99))
        queue = f"{self.queue:>8,}" if self.queue is not None else f"{'?':>8}"
        return (
            f"{self.number:>5}  {self.decided:>6,}/{self.sent:<6,} {queue}  {self.seconds:>8.1f} s"
            f"  {self.rate:>7,.0f}/s  {self.with_eta:>7,}/{self.backordered:<7,}"
            f"  {p50:>7,.0f} ms  {p99:>7,.0f} ms  {self.probe.timeouts:,} timed out,"
            f" {self.probe.failures:,} failed of {len(self.probe.latencies) + self.probe.failures:,}"
        )


HEADER = (
    f"{'block':>5}  {'decided/sent':<13} {'queue':>8}  {'decided in':>10}  {'orders/s':>9}"
    f"  {'ETA/backordered':<15}  {'health p50':>10}  {'health p99':>10}  /health probes"
)


def hot_order(run: str, sku: str, number: int) -> OrderPlaced:
    customer_id = f"{run}-c{number % 5000}"
    return OrderPlaced(
        order_id=f"{run}-o{number}",
        customer=Customer(customer_id=customer_id, email=f"{customer_id}@bench.example", tier="standard"),
        lines=[OrderLine(line_id="1", sku=sku, quantity=1, unit_price=Decimal("19.90"))],
        placed_at=datetime.now(UTC),
    )


async def eta_counts(conn: asyncpg.Connection, order_ids: Sequence[str]) -> tuple[int, int]:
    """(backordered lines showing an ETA, backordered lines) among these orders, in the order read model."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE first_eta_at IS NOT NULL) AS with_eta, count(*) AS backordered"
        " FROM order_lines WHERE order_id = ANY($1::text[]) AND backordered > 0",
        list(order_ids),
    )
    assert row is not None
    return int(row["with_eta"]), int(row["backordered"])


def dead(fleet: Fleet) -> list[str]:
    return [s.name for s in fleet.services.values() if s.process is None or s.process.returncode is not None]


@dataclass
class HotSku:
    fleet: Fleet
    producer: AIOKafkaProducer
    order_db: asyncpg.Connection
    run: str
    sku: str
    probe_interval: float
    probe_timeout: float

    async def block(self, number: int, first: int, size: int, deadline: float) -> Block:
        # Built before the clock starts: the block measures the system, not envelope serialization.
        envelopes = [new_envelope(hot_order(self.run, self.sku, first + i)) for i in range(size)]
        order_ids = [e.payload.order_id for e in envelopes]
        topic = self.fleet.topic(Topic.ORDERS)
        probe = HealthProbe(f"{self.fleet.url('inventory')}/health", self.probe_interval, self.probe_timeout)
        probing = asyncio.create_task(probe.run())
        started, give_up = time.time(), time.monotonic() + deadline
        completed: dict[str, float] = {}
        try:
            acks = [
                await self.producer.send(topic, e.to_json(), key=e.key.encode(), headers=e.headers())
                for e in envelopes
            ]
            await asyncio.gather(*acks)
            while len(completed) < size and time.monotonic() < give_up and not dead(self.fleet):
                await asyncio.sleep(POLL_SECONDS)  # a measuring poll, not a test wait
                completed.update(
                    await decided_at(self.order_db, [o for o in order_ids if o not in completed])
                )
        finally:
            probe.stop()
            await probing
        finished = len(completed) == size
        seconds = (max(completed.values()) if finished else time.time()) - started
        with_eta, backordered = await eta_counts(self.order_db, order_ids)
        return Block(number, size, len(completed), seconds, await self.queue(), with_eta, backordered, probe)

    async def queue(self) -> int | None:
        """Waiting lines: `waiting_lines` where the view pages its queue, else the whole queue's length."""
        url = f"{self.fleet.url('inventory')}/stock/{self.sku}"
        try:
            response = await self.fleet.http.get(url, params={"queue_limit": 0})
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        view = response.json()
        return int(view["waiting_lines"]) if "waiting_lines" in view else len(view["queue"])


def status_mb(pid: int, name: str) -> str:
    """A memory figure of /proc/<pid>/status (given there in kB), in MB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return f"{int(line.split()[1]) / 1024:,.0f} MB"
    return "?"


def where_from(service: ServiceProcess) -> str:
    """Which checkout a service process runs: its working directory and PYTHONPATH, as the kernel sees it."""
    assert service.process is not None
    pid = service.process.pid
    with contextlib.suppress(OSError):
        environ = dict(
            entry.split("=", 1)
            for entry in Path(f"/proc/{pid}/environ").read_text().split("\0")
            if "=" in entry
        )
        return f"cwd {os.readlink(f'/proc/{pid}/cwd')}, PYTHONPATH {environ.get('PYTHONPATH', '(unset)')}"
    return "unknown"


def report_processes(fleet: Fleet) -> None:
    memory, alive, cpu = [], [], []
    for service in fleet.services.values():
        process = service.process
        running = process is not None and process.returncode is None
        if process is not None and running:
            rss, peak = status_mb(process.pid, "VmRSS"), status_mb(process.pid, "VmHWM")
            memory.append(f"{service.name} {rss} (peak {peak})")
            seconds = process_seconds(process.pid)
            cpu.append(f"{service.name} {'?' if seconds is None else f'{seconds:,.1f} s'}")
        alive.append(
            f"{service.name} {'alive' if running else f'DEAD (exit {process and process.returncode})'}"
        )
    print(f"memory (VmRSS, peak VmHWM): {', '.join(memory) or 'no process left'}")
    print(f"CPU time (user + system): {', '.join(cpu) or 'no process left'}")
    print(f"processes at the end: {', '.join(alive)}")


def summarise(blocks: Sequence[Block]) -> None:
    done = [b for b in blocks if b.decided == b.sent]
    total = sum(b.decided for b in done)
    seconds = sum(b.seconds for b in done)
    overall = f"overall {total / seconds:,.0f} orders/s ({total:,} orders in {seconds:,.1f} s of blocks)"
    if len(done) >= 2:
        ratio = done[-1].seconds / done[1].seconds
        verdict = "flat" if ratio <= 1.2 else "grows with the queue"
        print(f"last/second block time: {ratio:.2f} (aim <= 1.2: {verdict}); {overall}")
    elif done:
        print(f"last/second block time: n/a (fewer than two blocks finished); {overall}")
    else:
        print("no block finished")


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench", "WARNING")
    run = f"hot{uuid.uuid4().hex[:6]}"
    sku = f"{run}-HOT"
    sizes = [min(args.block, args.orders - start) for start in range(0, args.orders, args.block)]
    with real_servers() as servers:
        async with mail_sink() as (smtp_port, emails):
            log_dir = state_dir() / "bench" / run
            async with running_fleet(
                servers,
                run,
                log_dir,
                env={"LOG_LEVEL": "WARNING"},
                service_env={"notifier": {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port)}},
            ) as fleet:
                producer = reliable_producer(fleet.kafka_bootstrap)
                await producer.start()
                order_db = await asyncpg.connect(fleet.services["order"].env["DATABASE_URL"])
                blocks: list[Block] = []
                try:
                    shop = Outsiders(fleet, producer)
                    await shop.set_suppliers(sku, *SUPPLIERS)
                    await shop.stock_up(sku, args.stock)
                    print(
                        f"one SKU, {args.stock} units in stock, {args.orders:,} one-unit orders in blocks of "
                        f"{args.block:,}; logs in {log_dir}\nservices run from "
                        f"{where_from(fleet.services['inventory'])}"
                    )
                    print(HEADER)
                    bench = HotSku(
                        fleet, producer, order_db, run, sku, args.probe_interval, args.probe_timeout
                    )
                    first = 0
                    for number, size in enumerate(sizes, start=1):
                        block = await bench.block(number, first, size, args.deadline)
                        blocks.append(block)
                        print(block.line(), flush=True)
                        first += size
                        if stopped := dead(fleet):
                            print(f"stopping: {', '.join(stopped)} died (logs in {log_dir})")
                            break
                        if block.decided < block.sent:
                            print(
                                f"stopping: block {number} was not decided within {args.deadline:.0f} s "
                                f"({block.sent - block.decided:,} orders still undecided)"
                            )
                            break
                    purchase_orders = await shop.purchase_orders(sku)
                    bought = sum(po["quantity"] for po in purchase_orders)
                    print(
                        f"at the end: purchase orders {len(purchase_orders)} for {bought:,} units; "
                        f"e-mails received: {emails.value:,}"
                    )
                finally:
                    report_processes(fleet)
                    summarise(blocks)
                    await order_db.close()
                    await producer.stop()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=50_000, help="one-unit orders in all")
    parser.add_argument("--block", type=int, default=5_000, help="orders published at once, then waited for")
    parser.add_argument("--stock", type=int, default=10, help="units of the SKU in stock at the start")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds a block may take; then stop")
    parser.add_argument("--probe-interval", type=float, default=0.05, help="seconds between /health probes")
    parser.add_argument("--probe-timeout", type=float, default=5.0, help="seconds; a slower probe times out")
    args = parser.parse_args()
    if args.orders < 1 or args.block < 1:
        parser.error("--orders and --block must be positive")
    return args


if __name__ == "__main__":
    run_on_uvloop(main(parse_args()))  # uvloop, as the services: the sender shares the machine with them
