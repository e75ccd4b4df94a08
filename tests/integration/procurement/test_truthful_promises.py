"""Truthful promises end to end (Kafka, PostgreSQL, HTTP): a PO overdue by a day is re-planned by the
daily job and its lines are told once; inventory's stock levels are what procurement plans from; SKUs
whose backorders wait without a supplier are reported to staff."""

import json
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from backbone.contracts import new_envelope
from backbone.contracts.events import ReorderPointReached, StockLevelChanged
from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.decider import Input
from backbone.eventstore import EventStore
from backbone.testing.fixtures import publish, read_topic, unique_name
from backbone.testing.waiting import eventually
from services.procurement import scheduler
from services.procurement.app import SERVICE
from services.procurement.domain import SetSupplierTerms
from services.procurement.handlers import apply, make_handler, new_repository
from services.procurement.planning import DEFAULT_POLICY
from tests.integration.procurement.harness import (
    FixedClock,
    Inventory,
    acknowledged,
    backordered,
    day,
    etas_of,
    purchase_order,
    serving,
    set_catalogue,
    settings,
    sku_reaches,
    supplier,
)
from tests.unit.procurement.scenario import terms

pytestmark = pytest.mark.integration


async def test_a_po_overdue_by_a_day_is_re_planned_once_and_its_lines_told(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    lamp = unique_name("LAMP")
    po_id = f"PO-{lamp}-0001"
    clock, queue = FixedClock(), Inventory().queue
    config = settings(database_url, kafka_bootstrap, topic_prefix, overdue_check_interval_seconds=0.1)
    async with serving(config, clock) as http:
        assert (await set_catalogue(http, lamp, supplier("P", lead_time_days=10))).status_code == 200
        await publish(
            producer,
            f"{topic_prefix}inventory",
            [*backordered(lamp, "o1", demanded=3, available=0), *queue(lamp, ("o1", 3))],
        )
        await sku_reaches(http, lamp, lambda v: etas_of(v) == {"o1": day(10).isoformat()}, "o1's ETA")
        await publish(producer, f"{topic_prefix}supplier", [acknowledged(lamp, po_id, 3, day(10))])

        async def confirmed() -> bool:
            return (await purchase_order(http, po_id))["confirmed_date"] == day(10).isoformat()

        await eventually(confirmed, what=f"{po_id} confirmed")

        # The day after the confirmed date the goods have not come: the job (which runs at startup and
        # then once a day) moves them to today + 3 grace days.
        clock.today = day(11)
        view = await sku_reaches(
            http, lamp, lambda v: etas_of(v) == {"o1": day(14).isoformat()}, "the revised ETA"
        )
        assert "overdue purchase order re-planned" in view["backorders"][0]["reason"]
        po = await purchase_order(http, po_id)
        assert (po["status"], po["confirmed_date"], po["due_date"]) == (
            "open",
            day(10).isoformat(),
            day(14).isoformat(),
        )

        # Running the job again on the same day (a second instance, a restart) changes nothing.
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            store = EventStore(SERVICE.registry)
            repository = new_repository(store)
            for _ in range(2):
                assert (
                    await scheduler.replan_overdue(pool, repository, today=day(11), policy=DEFAULT_POLICY)
                    == []
                )
            updates = await pool.fetchval(
                "SELECT count(*) FROM event_store WHERE event_type = 'BackorderEtaUpdated'"
                " AND stream_id = $1",
                f"sku:{lamp}",
            )
            assert updates == 2
        finally:
            await pool.close()

    records = await read_topic(kafka_bootstrap, f"{topic_prefix}procurement", 4)
    published = [_summary(r.value) for r in records if r.key == lamp.encode()]
    assert published == [
        ("SkuSourcingChanged", None, None, None),
        ("PurchaseOrderIssued", None, None, None),
        ("BackorderEtaUpdated", None, day(10).isoformat(), "purchase_order"),
        ("BackorderEtaUpdated", day(10).isoformat(), day(14).isoformat(), "purchase_order"),
    ]


async def test_stock_levels_are_planned_from_and_unsourced_backorders_are_reported(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    rug, vase, bowl = unique_name("RUG"), unique_name("VASE"), unique_name("BOWL")
    inventory, queue = f"{topic_prefix}inventory", Inventory().queue
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix), FixedClock()) as http:
        # Inventory's figures: 2 available, then reserved for orders procurement never hears of.
        assert (await set_catalogue(http, rug, supplier("P", lead_time_days=5))).status_code == 200
        await publish(producer, inventory, [_level(rug, on_hand=2, reserved=0)])
        await sku_reaches(http, rug, lambda v: v["free_stock"] == 2, "2 free")
        await publish(producer, inventory, [_level(rug, on_hand=2, reserved=2)])
        await sku_reaches(http, rug, lambda v: v["free_stock"] == 0, "none free")
        # So a line that joins is bought for, not told "today".
        await publish(producer, inventory, queue(rug, ("r1", 4)))
        view = await sku_reaches(http, rug, lambda v: bool(v["backorders"]), "r1's ETA")
        assert (etas_of(view), view["on_order"]) == ({"r1": day(5).isoformat()}, 4)

        # Two SKUs without a supplier get backorders: staff see them, a page at a time.
        await publish(producer, inventory, [*queue(vase, ("v1", 2), ("v2", 3)), *queue(bowl, ("b1", 1))])
        await sku_reaches(http, vase, lambda v: v["waiting_lines"] == 2, "vase's lines")
        await sku_reaches(http, bowl, lambda v: v["waiting_lines"] == 1, "bowl's line")
        report = await _unsourced(http)
        assert [(r["sku"], r["waiting_lines"], r["waiting_units"]) for r in report] == sorted(
            [(vase, 2, 5), (bowl, 1, 1)]
        )
        first = await _unsourced(http, limit=1, offset=0)
        second = await _unsourced(http, limit=1, offset=1)
        assert [r["sku"] for r in [*first, *second]] == [r["sku"] for r in report]
        [line] = (await http.get("/etas", params={"order_id": "v1"})).json()
        assert (line["eta"], line["reason"]) == (None, "no supplier is known for this SKU")

        # A supplier for the vase: bought for, dated, and off the report.
        assert (await set_catalogue(http, vase, supplier("P", lead_time_days=7))).status_code == 200
        assert [r["sku"] for r in await _unsourced(http)] == [bowl]
        assert (await http.get("/reports/unsourced", params={"limit": 0})).status_code == 422


def _level(sku: str, *, on_hand: int, reserved: int) -> Any:
    return new_envelope(
        StockLevelChanged(
            sku=sku, on_hand=on_hand, reserved=reserved, available=on_hand - reserved, backordered=0
        )
    )


async def _unsourced(http: httpx.AsyncClient, **params: int) -> list[dict[str, Any]]:
    response = await http.get("/reports/unsourced", params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


def _summary(value: bytes | None) -> tuple[str, str | None, str | None, str | None]:
    assert value is not None
    body = json.loads(value)
    payload = body["payload"]
    if body["event_type"] != "BackorderEtaUpdated":
        return (body["event_type"], None, None, None)
    return (body["event_type"], payload["previous_eta"], payload["eta"], payload["basis"])


async def test_the_read_models_hold_the_contracts_maximums(database_url: str) -> None:
    most, sku = 1_000_000_000, unique_name("BULK")
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations))
        store = EventStore(SERVICE.registry)
        handle = make_handler(store, DEFAULT_POLICY, FixedClock())
        catalogue = SetSupplierTerms(sku=sku, suppliers=[terms("S1", moq=most, pack=most)], actor="buyer")
        inputs: list[Input[Any]] = [Input(f"sku:{sku}", catalogue)]
        async with conn.transaction():
            await apply(conn, new_repository(store), inputs, today=day(0), policy=DEFAULT_POLICY)
        alert = ReorderPointReached(
            sku=sku, on_hand=0, reserved=0, available=0, backordered=most, reorder_point=most, safety_stock=0
        )
        async with conn.transaction():
            await handle(conn, [new_envelope(alert), *Inventory().queue(sku, ("o1", most))])
        row = await conn.fetchrow("SELECT * FROM procurement_skus WHERE sku = $1", sku)
        assert row is not None
        assert (row["backordered"], row["reorder_point"], row["on_order"]) == (most, most, 2 * most)
        terms_row = await conn.fetchrow("SELECT * FROM supplier_terms WHERE sku = $1", sku)
        assert terms_row is not None and terms_row["pack_size"] == most
        quantities = await conn.fetch("SELECT quantity FROM purchase_orders WHERE sku = $1", sku)
        assert [r["quantity"] for r in quantities] == [most, most]
    finally:
        await conn.close()
