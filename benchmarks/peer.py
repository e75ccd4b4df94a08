"""The reserve-or-backorder pipeline built with the `eventsourcing` library: `make bench`'s peer (issue 10).

What a Python team would otherwise pick: pyeventsourcing 9.5.6 with PostgreSQL persistence, its process
applications wired into a System and run by one of its runners, in this process, on the same PostgreSQL
server as our fleet, in a fresh database made for the run (dropped at the end):

    Orders --(Order.Placed)--> Inventory --(Decision.Made)--> OrderStatus

- Orders (Application): `place(order)` records an Order aggregate (Order.Placed: order id, tier, lines).
- Inventory (ProcessApplication following Orders): per line, loads the SKU aggregate, reserves
  min(quantity, available) (Sku.Reserved) and queues the shortfall as a backorder (Sku.Backordered), then
  records the per-order Decision aggregate (Decision.Made with the order's status): one transaction with
  its tracking record, as the library's process event pattern does.
- OrderStatus (ProcessApplication following Inventory, topics = Decision.Made only): records the order's
  status (OrderState.Decided). The moment that transaction commits is when an order counts as completed,
  as benchmarks/flow.py counts "status left accepted". A separate application, not Orders following
  Inventory in a loop: then every application has a single writer thread, which the push runner needs
  (with two threads saving in one leader, its recording events can reach a follower out of order, and
  the follower's single-row tracking then raises an IntegrityError).

Runner: MultiThreadedRunner by default, the documented one for a pipeline: a thread per follower, each
prompted in-process by its leader right after a commit, then pulling the new notifications from the
leader's table (no polling interval: latency is bound by the prompt, one SELECT per section and one
transaction per processed event). `--runner new` picks NewMultiThreadedRunner (push: leaders hand the
domain events to pulling/converting/processing threads, reading the table only to fill gaps). In short
runs on the 2-core machine neither was consistently faster, so the documented one is the default; the
New one also drops a leader's prompt when its queue of 100 is full and only catches up on the next one.

Settings, all documented ones (see PEER_ENV): a connection pool of 5 (+10 overflow) per application (the
default; no application uses more than three threads), no pre-ping; Inventory keeps every SKU aggregate
in its cache (AGGREGATE_CACHE_MAXSIZE=0, unbounded) without fast-forwarding (it is the only writer of
SKU aggregates, so the cache is never stale, as the docs allow); followers pull 100 notifications per
SELECT instead of 10 when they fall behind (leaders' log_section_size raised to match). Not set:
POSTGRES_ENABLE_DB_FUNCTIONS (an insert function that, in 9.5.6, bypasses the recorder's table lock and
the process recorder's tracking insert).

Orders are offered by one thread calling `place` (what the library's Application API is: a blocking
call); when the peer cannot take the offered rate, sends lag and go as fast as it accepts them, and the
step still reports completed / (first send -> last completion).
"""

import argparse
import functools
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from backbone.contracts.events import OrderPlaced
from benchmarks.flow import Step, make_order, ramp_arguments

INSTALL_HINT = "the eventsourcing peer is not installed: pip install -e '.[peer]' (or make bench-peer)"
RUNNERS = ("multi", "new")

# Documented eventsourcing settings, for every application (see the module docstring for why).
PEER_ENV = {
    "PERSISTENCE_MODULE": "eventsourcing.postgres",
    "POSTGRES_POOL_SIZE": "5",
    "POSTGRES_MAX_OVERFLOW": "10",
    "POSTGRES_PRE_PING": "n",
    "POSTGRES_CONNECT_TIMEOUT": "10",
    # Per application (the library reads <NAME>_<KEY> first): Inventory owns the SKU aggregates.
    "INVENTORY_AGGREGATE_CACHE_MAXSIZE": "0",
    "INVENTORY_AGGREGATE_CACHE_FASTFORWARD": "n",
}
PULL_SECTION_SIZE = 100  # notifications per SELECT when a follower catches up (library default 10)


class PeerNotInstalledError(RuntimeError):
    pass


# --- pure logic (no eventsourcing import; unit-tested) ---------------------------------------------


def allocate(quantity: int, available: int) -> tuple[int, int]:
    """(reserved, short) for one line: reserve what there is, the rest waits as a backorder."""
    reserved = max(0, min(quantity, available))
    return reserved, quantity - reserved


def order_status(lines: Iterable[tuple[int, int]]) -> str:
    """The order's status once every (reserved, short) line is decided, named as services/order does."""
    reserved = short = 0
    for line_reserved, line_short in lines:
        reserved += line_reserved
        short += line_short
    if not short:
        return "ready_to_ship"
    return "partially_backordered" if reserved else "backordered"


def postgres_env(admin_url: str, dbname: str) -> dict[str, str]:
    """eventsourcing's POSTGRES_* variables for database `dbname` on the admin URL's server and login."""
    parts = urlsplit(admin_url)
    if not parts.hostname or not parts.username:
        raise ValueError("the admin URL needs a host and a user")
    return {
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
    }


def order_lines(order: OrderPlaced) -> list[dict[str, Any]]:
    """The order's lines as plain JSON values (the library's default transcoder stores JSON)."""
    return [{"line_id": ln.line_id, "sku": ln.sku, "quantity": ln.quantity} for ln in order.lines]


class Completions:
    """When each order was decided (epoch seconds): written by OrderStatus's thread, awaited by the bench."""

    def __init__(self) -> None:
        self._at: dict[str, float] = {}
        self._changed = threading.Condition()

    def record(self, order_id: str, at: float) -> None:
        with self._changed:
            self._at[order_id] = at
            self._changed.notify_all()

    def wait_for(
        self, order_ids: Sequence[str], timeout: float, failed: Callable[[], bool]
    ) -> dict[str, float]:
        """Decision times of `order_ids` once all are decided, or whichever are when `timeout` passes."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (left := deadline - time.monotonic()) > 0 and not failed():
                if all(o in self._at for o in order_ids):
                    break
                # Woken by each decision; the cap only bounds how late a runner failure is noticed.
                self._changed.wait(min(left, 0.5))
            return {o: self._at[o] for o in order_ids if o in self._at}


# --- the eventsourcing system (lazy: the library is an optional dependency) ----------------------------


@dataclass(frozen=True)
class _Model:
    system: Any
    orders: type
    inventory: type
    order_status: type


@functools.cache  # once per process: the library registers each class's topic, and a topic names one class
def _model() -> _Model:
    try:
        from eventsourcing.application import AggregateNotFoundError, Application
        from eventsourcing.dispatch import singledispatchmethod
        from eventsourcing.domain import Aggregate, event
        from eventsourcing.system import ProcessApplication, System
        from eventsourcing.utils import get_topic
    except ImportError as e:
        raise PeerNotInstalledError(INSTALL_HINT) from e

    def uid(kind: str, key: str) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"/{kind}/{key}")

    class Order(Aggregate):
        @staticmethod
        def create_id(order_id: str) -> uuid.UUID:
            return uid("orders", order_id)

        @event("Placed")
        def __init__(self, order_id: str, tier: str, lines: list[dict[str, Any]]) -> None:
            self.order_id = order_id
            self.tier = tier
            self.lines = lines

    class Sku(Aggregate):
        @staticmethod
        def create_id(sku: str) -> uuid.UUID:
            return uid("skus", sku)

        @event("Stocked")
        def __init__(self, sku: str, available: int) -> None:
            self.sku = sku
            self.available = available
            self.waiting = 0  # backorders queued on this SKU
            self.backordered = 0  # units they wait for

        @event("Reserved")
        def reserve(self, order_id: str, line_id: str, quantity: int) -> None:
            self.available -= quantity

        @event("Backordered")
        def backorder(self, order_id: str, line_id: str, quantity: int) -> None:
            self.waiting += 1
            self.backordered += quantity

    class Decision(Aggregate):
        """Inventory's answer for one order, which OrderStatus follows."""

        @staticmethod
        def create_id(order_id: str) -> uuid.UUID:
            return uid("decisions", order_id)

        @event("Made")
        def __init__(self, order_id: str, status: str, lines: list[dict[str, Any]]) -> None:
            self.order_id = order_id
            self.status = status
            self.lines = lines

    class OrderState(Aggregate):
        @staticmethod
        def create_id(order_id: str) -> uuid.UUID:
            return uid("order-status", order_id)

        @event("Decided")
        def __init__(self, order_id: str, status: str) -> None:
            self.order_id = order_id
            self.status = status

    class Orders(Application):
        log_section_size = PULL_SECTION_SIZE  # a leader serves at most this many per select

        def place(self, order: OrderPlaced) -> None:
            self.save(Order(order_id=order.order_id, tier=order.customer.tier, lines=order_lines(order)))

    class Inventory(ProcessApplication):
        log_section_size = pull_section_size = PULL_SECTION_SIZE

        def stock(self, units: Mapping[str, int]) -> None:
            self.save(*(Sku(sku=sku, available=n) for sku, n in units.items()))

        @singledispatchmethod
        def policy(self, domain_event: Any, processing_event: Any) -> None:
            """Other events of Orders: nothing to do."""

        @policy.register(Order.Placed)
        def _(self, domain_event: Any, processing_event: Any) -> None:
            skus = []
            decided = []
            for line in domain_event.lines:
                try:
                    sku = self.repository.get(Sku.create_id(line["sku"]))
                except AggregateNotFoundError:
                    sku = Sku(sku=line["sku"], available=0)  # never stocked: all of it waits
                reserved, short = allocate(line["quantity"], sku.available)
                if reserved:
                    sku.reserve(domain_event.order_id, line["line_id"], reserved)
                if short:
                    sku.backorder(domain_event.order_id, line["line_id"], short)
                skus.append(sku)
                decided.append({"line_id": line["line_id"], "reserved": reserved, "short": short})
            status = order_status((d["reserved"], d["short"]) for d in decided)
            decision = Decision(order_id=domain_event.order_id, status=status, lines=decided)
            processing_event.collect_events(*skus, decision)

    class OrderStatus(ProcessApplication):
        log_section_size = pull_section_size = PULL_SECTION_SIZE
        completions: Completions | None = None  # set by the bench once the runner has made the application

        @singledispatchmethod
        def policy(self, domain_event: Any, processing_event: Any) -> None:
            """SKU events of Inventory: not this application's business (filtered by topic anyway)."""

        @policy.register(Decision.Made)
        def _(self, domain_event: Any, processing_event: Any) -> None:
            processing_event.collect_events(
                OrderState(order_id=domain_event.order_id, status=domain_event.status)
            )

        def process_event(self, domain_event: Any, tracking: Any) -> None:
            super().process_event(domain_event, tracking)  # returns once the transaction has committed
            if self.completions is not None and isinstance(domain_event, Decision.Made):
                self.completions.record(domain_event.order_id, time.time())

    # Followers select only the topics they act on, so they don't deserialise what they'd ignore.
    Inventory.topics = (get_topic(Order.Placed),)
    OrderStatus.topics = (get_topic(Decision.Made),)
    system = System(pipes=[[Orders, Inventory, OrderStatus]])
    return _Model(system, Orders, Inventory, OrderStatus)


def _make_runner(kind: str, system: Any, env: Mapping[str, str]) -> Any:
    from eventsourcing.system import MultiThreadedRunner, NewMultiThreadedRunner

    if kind not in RUNNERS:
        raise ValueError(f"runner must be one of {RUNNERS}, not {kind!r}")
    return (MultiThreadedRunner if kind == "multi" else NewMultiThreadedRunner)(system, env=dict(env))


class _Database:
    """A database made for one run on the admin URL's server, dropped (connections or not) at the end."""

    def __init__(self, admin_url: str, name: str) -> None:
        self.admin_url, self.name = admin_url, name

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # identifiers we made, not user input

    def __enter__(self) -> str:
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self.name

    def __exit__(self, *_: object) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _offer(
    orders: Any, rate: int, seconds: float, number: int, run: str, skus: Sequence[str], rng: random.Random
) -> dict[str, float]:
    """Place rate*seconds orders on schedule (or as fast as `place` returns); epoch seconds of each send."""
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    for i in range(int(rate * seconds)):
        if (delay := started + i / rate - time.monotonic()) > 0:
            time.sleep(delay)
        order = make_order(run, number + i, skus, rng)
        sent_at[order.order_id] = time.time()
        orders.place(order)
    return sent_at


def run_peer(
    pg_admin_url: str,
    rates: Sequence[int],
    seconds: float,
    drain: float,
    sku_count: int,
    p99_limit: float,
    *,
    runner: str = "multi",
    report: Callable[[Step], None] | None = None,
) -> list[Step]:
    """The ramp of benchmarks.flow run against the eventsourcing peer; one Step per rate tried.

    Synchronous (threads of the library's runner do the work). Stops after the first step with orders
    still undecided `drain` seconds after its last send, or with p99 over `p99_limit` seconds; `report`
    (e.g. print) sees each step as soon as it is measured.
    """
    model = _model()  # raises PeerNotInstalledError with the install hint
    run = f"peer{uuid.uuid4().hex[:6]}"
    rng = random.Random(7)  # the same orders and scarce SKUs as benchmarks.flow.main draws
    skus = [f"{run}-SKU-{n:04}" for n in range(sku_count)]
    scarce = set(rng.sample(skus, max(1, sku_count // 20)))
    steps: list[Step] = []
    with _Database(pg_admin_url, f"backorder_{run}") as dbname:
        system_runner = _make_runner(runner, model.system, {**PEER_ENV, **postgres_env(pg_admin_url, dbname)})
        system_runner.start()
        try:
            completions = Completions()
            system_runner.get(model.order_status).completions = completions
            orders = system_runner.get(model.orders)
            system_runner.get(model.inventory).stock({s: 20 if s in scarce else 1_000_000 for s in skus})
            failed = system_runner.has_errored.is_set
            number = 0
            for rate in rates:
                sent_at = _offer(orders, rate, seconds, number, run, skus, rng)
                if not sent_at:
                    continue  # rate * seconds < 1: nothing to measure
                number += len(sent_at)
                done = completions.wait_for(list(sent_at), drain, failed)
                if failed():
                    system_runner.reraise_thread_errors()
                first_send = min(sent_at.values())
                last = max(done.values(), default=first_send)
                latencies = [max(0.0, at - sent_at[o]) for o, at in done.items()]
                step = Step(rate, len(sent_at), len(done), last - first_send, latencies)
                steps.append(step)
                if report:
                    report(step)
                if not step.kept_up(p99_limit):
                    break
        finally:
            system_runner.stop()
    return steps


def main(
    rates: Sequence[int], seconds: float, drain: float, sku_count: int, p99_limit: float, runner: str
) -> None:
    from backbone.testing.servers import real_servers

    try:
        _model()
    except PeerNotInstalledError as e:
        raise SystemExit(str(e)) from None
    with real_servers() as servers:
        print(f"eventsourcing peer ({runner} runner): {sku_count} SKUs, {seconds:.0f} s per step", flush=True)
        steps = run_peer(
            servers.pg_admin_url,
            rates,
            seconds,
            drain,
            sku_count,
            p99_limit,
            runner=runner,
            report=lambda step: print(step.line(), flush=True),
        )
    if steps and not steps[-1].kept_up(p99_limit):
        print(f"stopping the ramp: the peer does not keep up with {steps[-1].offered}/s")


def parse_args() -> argparse.Namespace:
    parser = ramp_arguments(__doc__, "20,40,80,160,320")
    parser.add_argument(
        "--runner", choices=RUNNERS, default="multi", help="MultiThreadedRunner or the New one"
    )
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    main(
        [int(r) for r in args.rates.split(",")],
        args.seconds,
        args.drain,
        args.skus,
        args.p99_limit,
        args.runner,
    )
