"""The dead-letter tool against the real Kafka and PostgreSQL: a message a real ConsumerLoop cannot apply
is dead-lettered, listed and shown; replayed before the fix it fails again (and says it was a replay);
after the fix it is applied exactly once; a second replay is refused, a forced one changes nothing (the
inbox); purged letters are deleted only as a handled prefix; a reference letter's original is read back
from its source topic; parked relay events are retried and discarded; everything is audited."""

import asyncio
import io
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import pytest
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from backbone.consumer import ConsumerLoop
from backbone.contracts import Envelope, new_envelope
from backbone.contracts.events import Customer, OrderLine, OrderPlaced, StockAdjusted
from backbone.db import create_pool
from backbone.deadletters import Kafka, Position, ToolSettings, run
from backbone.eventstore import EventStore
from backbone.kafka import ensure_topics, reliable_producer
from backbone.outbox import OutboxRelay
from backbone.testing.background import running
from backbone.testing.fixtures import publish
from backbone.testing.waiting import eventually
from tests.integration.backbone.events import adjustment, receipt

pytestmark = pytest.mark.integration


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def cli(settings: ToolSettings, *argv: str) -> Ran:
    """The tool in this process, as `python -m backbone.deadletters ...` runs it."""
    out, err = io.StringIO(), io.StringIO()
    code = await run(argv, settings=settings, out=out, err=err)
    return Ran(code, out.getvalue(), err.getvalue())


async def cli_process(env: dict[str, str], *argv: str) -> Ran:
    """The tool as a separate process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "backbone.deadletters",
        *argv,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


class Receipts:
    """Applies goods receipts, one row per application (no key: a double would show as two rows). Refuses
    the receipts in `refused`, as a handler with a bug would, until the bug is fixed."""

    def __init__(self, *refused: str) -> None:
        self.refused = set(refused)

    async def __call__(self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
        for e in events:
            if e.payload.receipt_id in self.refused:
                raise ValueError(f"receipt {e.payload.receipt_id} refused: unknown warehouse bin")
        await conn.executemany(
            "INSERT INTO applied (event_id, label) VALUES ($1, $2)",
            [(e.event_id, e.payload.receipt_id) for e in events],
        )


class Orders:
    def __init__(self, *refused: str) -> None:
        self.refused = set(refused)

    async def __call__(self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
        for e in events:
            if e.payload.order_id in self.refused:
                raise ValueError(f"order {e.payload.order_id} refused")
        await conn.executemany(
            "INSERT INTO applied (event_id, label) VALUES ($1, $2)",
            [(e.event_id, e.payload.order_id) for e in events],
        )


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    await pool.execute("CREATE TABLE applied (event_id uuid NOT NULL, label text NOT NULL)")
    yield pool
    await pool.close()


async def applications(pool: asyncpg.Pool, event_id: UUID) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM applied WHERE event_id = $1", event_id))


class Watch:
    """End offsets of a topic and what a consumer group committed of it."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)

    async def __aenter__(self) -> "Watch":
        await self._consumer.start()
        await self._admin.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def ends(self, topic: str, partitions: int) -> dict[int, int]:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: o for tp, o in (await self._consumer.end_offsets(tps)).items()}

    async def caught_up(self, group: str, topic: str, partitions: int) -> bool:
        committed = await self._admin.list_consumer_group_offsets(group)
        ends = await self.ends(topic, partitions)
        return all(
            end == 0 or ((c := committed.get(TopicPartition(topic, p))) is not None and c.offset >= end)
            for p, end in ends.items()
        )


def by(actor: str, note: str) -> tuple[str, ...]:
    return ("--actor", actor, "--note", note)


def letter_of(listing: Any, topic: str, **where: Any) -> dict[str, Any]:
    """The one letter of the topic whose fields have these values."""
    [found] = [
        x
        for t in listing["topics"]
        if t["topic"] == topic
        for x in t["letters"]
        if all(x[k] == v for k, v in where.items())
    ]
    return found


def topic_report(listing: Any, topic: str) -> dict[str, Any]:
    return next(t for t in listing["topics"] if t["topic"] == topic)


async def test_a_poison_message_is_listed_shown_replayed_after_the_fix_once_and_purged(
    pool: asyncpg.Pool, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    source, dlq = f"{topic_prefix}supplier", f"{topic_prefix}supplier.dlq"
    await ensure_topics(kafka_bootstrap, [source], 2, 1)
    await ensure_topics(kafka_bootstrap, [dlq], 1, 1)  # one partition: the letters' order is the topic's
    settings = ToolSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "TOPIC_PREFIX": topic_prefix}
    handler = Receipts("r-poison")
    group = f"{topic_prefix}inventory"
    loop = ConsumerLoop(
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        topics=[source],
        pool=pool,
        handler=handler,
        service="inventory",
        handles=["GoodsReceived"],
    )
    good1, poison, good2 = receipt("SKU-1", "r-1"), receipt("SKU-2", "r-poison"), receipt("SKU-1", "r-2")
    await publish(producer, source, [good1, poison])
    await producer.send_and_wait(source, b"{not json", key=b"SKU-3", headers=good1.headers())
    await publish(producer, source, [good2])

    async with running(loop.run()), Watch(kafka_bootstrap) as watch:

        async def letters(count: int) -> Any:
            listing = (await cli(settings, "list", "--json")).json()
            return listing if topic_report(listing, dlq)["counts"]["total"] == count else None

        listing = await eventually(lambda: letters(2), what="two dead letters")
        assert await applications(pool, good1.event_id) == await applications(pool, good2.event_id) == 1

        # list: what, why, who, where from, status
        refused = letter_of(listing, dlq, event_id=str(poison.event_id))
        garbage = letter_of(listing, dlq, event_id=str(good1.event_id))  # it came with good1's headers
        assert (
            refused["reason"] == "handler failed: ValueError: receipt r-poison refused: unknown warehouse bin"
        )
        assert (refused["status"], refused["service"], refused["event_type"]) == (
            "open",
            "inventory",
            "GoodsReceived",
        )
        assert refused["source"]["topic"] == source and refused["reference"] is False
        assert "Invalid JSON" in garbage["reason"]
        assert topic_report(listing, dlq)["counts"] == {"total": 2, "open": 2, "replayed": 0, "purged": 0}
        table = await cli(settings, "list", "--topic", "supplier")
        assert table.code == 0
        assert f"{dlq}: 2 dead letters (2 open, 0 replayed, 0 purged)" in table.out
        assert "receipt r-poison refused" in table.out and str(poison.event_id) in table.out
        assert (await cli(settings, "list", "--service", "order")).code == 1  # nothing matched
        assert (await cli(settings, "list", "--status", "replayed")).code == 1

        # show: one letter in full
        where = (str(refused["partition"]), str(refused["offset"]))
        shown = await cli(settings, "show", "supplier", *where)
        assert shown.code == 0, shown.err
        assert "reason:     handler failed: ValueError: receipt r-poison refused" in shown.out
        assert '"receipt_id": "r-poison"' in shown.out and "dlq_service: inventory" in shown.out
        as_json = (await cli(settings, "show", dlq, f"{where[0]}:{where[1]}", "--json")).json()
        assert as_json["payload"]["payload"]["receipt_id"] == "r-poison"
        assert ["event_id", str(poison.event_id)] in as_json["headers"]
        assert (await cli(settings, "show", "supplier", "0", "999")).code == 1

        # a dry run says what a replay would send, and sends and records nothing
        ends = await watch.ends(source, 2)
        dry = await cli(settings, "replay", "supplier", "--all", *by("alice", "look"), "--dry-run", "--json")
        assert dry.code == 0 and len(dry.json()["done"]) == 2
        assert await watch.ends(source, 2) == ends
        async with Kafka(settings, timeout=30) as kafka:
            assert kafka.audit_topic not in await kafka.topics()

        # purge the garbage, deleting the handled prefix: only what lies before the first open letter
        purge = ("purge", "supplier", f"0:{garbage['offset']}", *by("bob", "not JSON"), "--delete-records")
        purged = await cli(settings, *purge, "--json")
        assert purged.code == 0, purged.err
        assert [d["letter"] for d in purged.json()["done"]] == [f"{dlq}/0:{garbage['offset']}"]
        expected_low = garbage["offset"] + 1 if garbage["offset"] < refused["offset"] else 0
        after_purge = (await cli(settings, "list", "--json")).json()
        assert topic_report(after_purge, dlq)["partitions"] == [
            {"partition": 0, "low": expected_low, "high": 2}
        ]
        assert letter_of(after_purge, dlq, offset=refused["offset"])["status"] == "open"

        # replayed before the fix: it fails again, and its new letter says what it replays
        first = await cli(
            settings, "replay", "supplier", f"0:{refused['offset']}", *by("alice", "retrying"), "--json"
        )
        assert first.code == 0, first.err
        [done] = first.json()["done"]
        replayed_to = done["replayed_to"]
        listing = await eventually(lambda: letters(3 - expected_low), what="the replay dead-lettered")
        again = letter_of(listing, dlq, status="open")
        assert again["replay_of"] == f"{dlq}/0:{refused['offset']}"
        assert (
            f"{again['source']['topic']}/{again['source']['partition']}:{again['source']['offset']}"
            == replayed_to
        )
        assert again["source"]["partition"] == refused["source"]["partition"]  # the key's partition
        assert letter_of(listing, dlq, offset=refused["offset"])["status"] == "replayed"

        # the fix, then the replay: applied exactly once
        handler.refused.clear()
        with structlog.testing.capture_logs() as logs:
            fixed = await cli(
                settings, "replay", "supplier", f"0:{again['offset']}", *by("alice", "bin created"), "--json"
            )
        assert fixed.code == 0, fixed.err
        [line] = [entry for entry in logs if entry["event"] == "dead letter replayed"]
        assert (line["actor"], line["note"], line["letter"]) == (
            "alice",
            "bin created",
            f"{dlq}/0:{again['offset']}",
        )
        await eventually(lambda: applications(pool, poison.event_id), what="the replayed receipt applied")
        async with Kafka(settings, timeout=30) as kafka:
            republished = await kafka.fetch(
                Position.model_validate(_position(fixed.json()["done"][0]["replayed_to"]))
            )
        assert republished is not None
        names = [name for name, _ in republished.headers]
        assert names.count("replay_of") == 1 and not any(n.startswith("dlq_") for n in names)
        assert dict(republished.headers)["replay_of"] == f"{dlq}/0:{again['offset']}".encode()

        # again: refused without --force, and nothing is published
        ends = await watch.ends(source, 2)
        refused_again = await cli(
            settings, "replay", "supplier", f"0:{again['offset']}", *by("alice", "once more"), "--json"
        )
        assert refused_again.code == 1
        assert "already replayed by alice" in refused_again.json()["skipped"][0]["why"]
        assert await watch.ends(source, 2) == ends

        # forced, as a separate process: published, and the inbox drops it
        forced = await cli_process(
            env, "replay", "supplier", f"0:{refused['offset']}", *by("carol", "forced"), "--force", "--json"
        )
        assert forced.code == 0, forced.err
        assert json.loads(forced.out)["done"][0]["letter"] == f"{dlq}/0:{refused['offset']}"
        log_lines = [json.loads(x) for x in forced.err.splitlines() if x.startswith("{")]
        assert any(x["event"] == "dead letter replayed" and x["actor"] == "carol" for x in log_lines)
        assert await watch.ends(source, 2) != ends
        await eventually(lambda: watch.caught_up(group, source, 2), what="the forced replay consumed")
        assert await applications(pool, poison.event_id) == 1
        assert (loop.applied, loop.dead_lettered) == (3, 3)

    listing = (await cli(settings, "list", "--json")).json()
    statuses = {x["offset"]: (x["status"], len(x["history"])) for x in topic_report(listing, dlq)["letters"]}
    assert statuses[refused["offset"]] == ("replayed", 2)
    assert statuses[again["offset"]] == ("replayed", 1)

    # every letter handled: the whole partition may go
    trimmed = await cli(settings, "purge", "supplier", "--delete-records", *by("bob", "tidy"))
    assert trimmed.code == 0, trimmed.err
    assert "partition 0: records before offset 3 deleted" in trimmed.out
    empty = await cli(settings, "list", "--topic", "supplier", "--json")
    assert empty.code == 1
    assert topic_report(empty.json(), dlq)["partitions"] == [{"partition": 0, "low": 3, "high": 3}]

    audit = (await cli(settings, "audit", "--json")).json()["records"]
    assert [(r["action"], r["actor"], r["letter"]["offset"], r["forced"]) for r in audit] == [
        ("purged", "bob", garbage["offset"], False),
        ("replayed", "alice", refused["offset"], False),
        ("replayed", "alice", again["offset"], False),
        ("replayed", "carol", refused["offset"], True),
    ]
    assert audit[1]["replayed_to"] == _position(replayed_to)
    assert (await cli(settings, "audit")).out.count("dead_letter:replayed") == 3


def _position(text: str) -> dict[str, Any]:
    topic, _, place = text.rpartition("/")
    partition, offset = place.split(":")
    return {"topic": topic, "partition": int(partition), "offset": int(offset)}


def big_order(order_id: str) -> Envelope[Any]:
    lines = [
        OrderLine(line_id=str(n), sku=f"SKU-{n}", quantity=1, unit_price=Decimal("9.90")) for n in range(400)
    ]
    return new_envelope(
        OrderPlaced(
            order_id=order_id,
            customer=Customer(customer_id="c-1", email="ana@example.com"),
            lines=lines,
            placed_at=datetime.now(UTC),
        )
    )


async def test_a_reference_letter_is_replayed_from_its_source_topic_after_its_digest_is_checked(
    pool: asyncpg.Pool, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    source, dlq = f"{topic_prefix}orders", f"{topic_prefix}orders.dlq"
    await ensure_topics(kafka_bootstrap, [source], 1, 1)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # a whole copy of the order does not fit: the letter is a reference
        await admin.create_topics([NewTopic(dlq, 1, 1, topic_configs={"max.message.bytes": "20000"})])
    finally:
        await admin.close()
    settings = ToolSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    handler = Orders("o-big")
    loop = ConsumerLoop(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}order",
        topics=[source],
        pool=pool,
        handler=handler,
        service="order",
    )
    big = big_order("o-big")
    assert len(big.to_json()) > 20_000
    await publish(producer, source, [big])
    async with running(loop.run()):

        async def listed() -> Any:
            ran = await cli(settings, "list", "--topic", "orders", "--json")
            return ran.json() if ran.code == 0 else None

        listing = await eventually(listed, what="the dead letter")
        letter = letter_of(listing, dlq, event_id=str(big.event_id))
        assert letter["reference"] is True
        shown = await cli(settings, "show", "orders", "0", str(letter["offset"]))
        assert f"only a reference; the original has {len(big.to_json())} bytes" in shown.out
        handler.refused.clear()
        replayed = await cli(
            settings, "replay", "orders", "--all", "--actor", "dan", "--note", "fixed", "--json"
        )
        assert replayed.code == 0, replayed.err
        await eventually(lambda: applications(pool, big.event_id), what="the big order applied")
    assert await applications(pool, big.event_id) == 1


async def test_bad_input_exits_2_and_changes_nothing(kafka_bootstrap: str, topic_prefix: str) -> None:
    no_databases = dict.fromkeys(["database_url", "order_database_url"])  # whatever the environment says
    settings = ToolSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, **no_databases
    )
    await ensure_topics(kafka_bootstrap, [f"{topic_prefix}orders.dlq"], 1, 1)
    cases = {
        ("list", "--topic", "bogus"): "no dead-letter topic 'bogus'",
        ("show", "orders", "x"): "not a dead letter's place",
        ("show", "orders", "1", "x"): "show orders <partition> <offset>",
        ("replay", "orders", "--actor", "a", "--note", "n"): "or give --all",
        ("replay", "orders", "0:1", "--all", "--actor", "a", "--note", "n"): "not both",
        ("replay", "orders", "1-2", "--actor", "a", "--note", "n"): "not a dead letter's place",
        ("replay", "orders", "0:5", "--actor", "a", "--note", "n"): "no dead letter at 0:5",
        ("replay", "orders", "--all", "--note", "n"): "the following arguments are required: --actor",
        ("replay", "orders", "--all", "--actor", " ", "--note", "n"): "--actor",
        ("purge", "orders", "--all", "--actor", "a"): "--note",
        ("parked", "list", "--service", "order"): "which service's database?",
        ("parked", "list", "--service", "shop"): "invalid choice: 'shop'",
        ("frobnicate",): "invalid choice",
    }
    for argv, message in cases.items():
        ran = await cli(settings, *argv)
        assert (ran.code, ran.out) == (2, ""), (argv, ran)
        assert message in ran.err, (argv, ran.err)
    async with Kafka(settings, timeout=30) as kafka:
        assert kafka.audit_topic not in await kafka.topics()  # nothing was even recorded
    unreachable = ToolSettings(kafka_bootstrap_servers="127.0.0.1:1", topic_prefix=topic_prefix)
    ran = await cli(unreachable, "list", "--timeout", "5")
    assert ran.code == 3 and ran.err.startswith("failed: ")
    process = await cli_process({"TOPIC_PREFIX": topic_prefix}, "--help")
    assert process.code == 0 and "replay" in process.out
    process = await cli_process({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "list")
    assert process.code == 2 and "KAFKA_SASL_USERNAME" in process.err


async def test_parked_events_are_listed_retried_and_discarded_with_an_audit(
    database_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}inventory"
    await ensure_topics(kafka_bootstrap, [topic], 1, 1)
    settings = ToolSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=topic_prefix,
        inventory_database_url=database_url,
    )
    long_reason = "x" * 1000
    a1, b1, b2, c1, c2 = (
        adjustment("A"),
        _adjustment("B", long_reason),
        adjustment("B"),
        _adjustment("C", long_reason),
        adjustment("C"),
    )
    conn = await asyncpg.connect(database_url)
    try:
        store = EventStore()
        async with conn.transaction():
            for e in (a1, b1, b2, c1, c2):
                await store.append(conn, f"stream-{e.event_id}", 0, [e])
        position = {
            r["event_id"]: r["global_position"]
            for r in await conn.fetch("SELECT event_id, global_position FROM event_store")
        }
        # A producer whose max_request_size the long adjustments exceed: they are parked.
        small = reliable_producer(kafka_bootstrap, max_request_size=1200)
        await small.start()
        try:
            relay = OutboxRelay(database_url, small, topic_prefix, max_backoff_seconds=1.0)
            async with running(relay.run()):
                await eventually(lambda: _parked(conn, 2), what="two events parked")
                await eventually(lambda: _outbox(conn, 2), what="a1 published")
        finally:
            await small.stop()

        listed = await cli(settings, "parked", "list", "--database-url", database_url, "--json")
        assert listed.code == 0, listed.err
        rows = listed.json()["parked"]
        assert [(r["position"], r["partition_key"], r["waiting_behind"]) for r in rows] == [
            (position[b1.event_id], "B", 1),
            (position[c1.event_id], "C", 1),
        ]
        assert all("too large" in r["reason"] for r in rows)
        assert "postgres:" not in listed.out  # the label names the database, not its credentials
        human = await cli(settings, "parked", "list", "--database-url", database_url)
        assert re.search(rf"^\s+{position[b1.event_id]}\s+StockAdjusted\s+{b1.event_id}", human.out, re.M)

        db = ("--database-url", database_url)
        missing = await cli(settings, "parked", "retry", "99999", *db, *by("erin", "n"))
        assert missing.code == 2 and "not parked" in missing.err
        fixed_it = by("erin", "max_request_size raised")
        # --service: the URL from INVENTORY_DATABASE_URL, as `make deadletters` exports it
        retried = await cli(
            settings, "parked", "retry", str(position[b1.event_id]), *fixed_it, "--service", "inventory"
        )
        assert retried.code == 0, retried.err
        discarded = await cli(settings, "parked", "discard", "--all", *db, *by("erin", "C told"), "--json")
        assert discarded.code == 0, discarded.err
        assert [d["position"] for d in discarded.json()["done"]] == [position[c1.event_id]]
        assert (await cli(settings, "parked", "list", "--database-url", database_url)).code == 1

        # the cause fixed (a producer with the usual limit): b1 goes out before b2; c2 follows c1's discard
        normal = reliable_producer(kafka_bootstrap)
        await normal.start()
        try:
            relay = OutboxRelay(database_url, normal, topic_prefix, max_backoff_seconds=1.0)
            async with running(relay.run()):
                await eventually(lambda: _outbox(conn, 0), what="the outbox drained")
        finally:
            await normal.stop()
    finally:
        await conn.close()
    published = await _event_ids(kafka_bootstrap, topic)
    assert published == [a1.event_id, b1.event_id, b2.event_id, c2.event_id]

    audit = (await cli(settings, "audit", "--kind", "parked", "--json")).json()["records"]
    label = audit[0]["database"]
    assert label.endswith("/" + database_url.rpartition("/")[2]) and "@" not in label
    assert [(r["action"], r["position"], r["actor"], r["note"], r["service"]) for r in audit] == [
        ("retried", position[b1.event_id], "erin", "max_request_size raised", "inventory"),
        ("discarded", position[c1.event_id], "erin", "C told", database_url.rpartition("/")[2]),
    ]
    assert audit[0]["event_id"] == str(b1.event_id)


def _adjustment(sku: str, reason: str) -> Envelope[Any]:
    return new_envelope(StockAdjusted(sku=sku, delta=1, on_hand_after=1, reason=reason, actor="t"))


async def _parked(conn: asyncpg.Connection, count: int) -> bool:
    return int(await conn.fetchval("SELECT count(*) FROM parked_events")) == count


async def _outbox(conn: asyncpg.Connection, count: int) -> bool:
    return int(await conn.fetchval("SELECT count(*) FROM outbox")) == count


async def _event_ids(bootstrap: str, topic: str) -> list[UUID]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        seen: list[UUID] = []

        async def all_read() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen.extend(UUID(dict(r.headers)["event_id"].decode()) for r in records)
            return len(seen) >= end

        await eventually(all_read, what=f"{end} messages on {topic}")
        return seen
    finally:
        await consumer.stop()
