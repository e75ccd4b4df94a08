"""Supplier reliability from the receipts against our POs: on-time rate against the confirmed dates, how
late the supplier runs, how well the planned dates held; counted once per receipt and rebuilt the same."""

from datetime import UTC, datetime, time

import pytest
from aiokafka import AIOKafkaProducer

from backbone.contracts import new_envelope
from backbone.contracts.events import GoodsReceived
from backbone.testing.fixtures import publish, unique_name
from backbone.testing.service import run_rebuild
from backbone.testing.waiting import eventually
from tests.integration.procurement.harness import (
    FixedClock,
    Inventory,
    acknowledged,
    backordered,
    day,
    serving,
    set_catalogue,
    settings,
    sku_reaches,
    supplier,
)

pytestmark = pytest.mark.integration


def received_on(n: int, sku: str, po_id: str, quantity: int) -> object:
    at = datetime.combine(day(n), time(10), tzinfo=UTC)
    return new_envelope(
        GoodsReceived(
            receipt_id=f"R-{po_id}",
            po_id=po_id,
            supplier_id="REL",
            sku=sku,
            quantity=quantity,
            received_at=at,
        )
    )


async def test_receipts_make_the_suppliers_report(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    jacket, boots = unique_name("JACKET"), unique_name("BOOTS")
    inventory, supplier_topic = f"{topic_prefix}inventory", f"{topic_prefix}supplier"
    queue = Inventory().queue
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix), FixedClock()) as http:
        for sku in (jacket, boots):
            assert (await set_catalogue(http, sku, supplier("REL", lead_time_days=10))).status_code == 200
        await publish(
            producer,
            inventory,
            [
                *backordered(jacket, "o1", demanded=4, available=0),
                *queue(jacket, ("o1", 4)),
                *backordered(boots, "o2", demanded=6, available=0),
                *queue(boots, ("o2", 6)),
            ],
        )
        for sku in (jacket, boots):  # both POs planned for day 10 (issue day 0 + lead time 10)
            await sku_reaches(http, sku, lambda v: bool(v["open_purchase_orders"]), f"{sku}'s PO")
        po_jacket, po_boots = f"PO-{jacket}-0001", f"PO-{boots}-0001"
        # The jackets are confirmed for day 12 and come on day 15 (3 days late; 5 after the plan); the
        # boots, never confirmed, come on day 8 (2 days before the plan: on time).
        await publish(
            producer,
            supplier_topic,
            [
                acknowledged(jacket, po_jacket, 4, day(12)),
                received_on(15, jacket, po_jacket, 4),
                received_on(8, boots, po_boots, 6),
            ],
        )

        async def report() -> list[dict]:
            rows = (await http.get("/reports/suppliers")).json()
            return rows if rows and rows[0]["receipts"] == 2 else []

        [rel] = await eventually(report, what="both receipts counted")
        expected = {
            "supplier_id": "REL",
            "receipts": 2,
            "on_time_rate": 0.5,
            "days_late_p50": -2,  # nearest rank 1 of [-2, 3]
            "days_late_p80": 3,  # rank ceil(0.8 * 2) = 2
            "planned_kept_rate": 0.5,
            "planned_mean_abs_error_days": 3.5,  # (5 + 2) / 2
        }
        assert {k: rel[k] for k in expected} == expected

        # A receipt re-sent under a new event id counts once: after it, on the same partition, a receipt
        # without a PO (counted in free stock, not in the report) says the re-send was read.
        before = (await http.get(f"/skus/{jacket}")).json()["free_stock"]
        marker = GoodsReceived(receipt_id="R-marker", sku=jacket, quantity=1, received_at=datetime.now(UTC))
        await publish(producer, supplier_topic, [received_on(15, jacket, po_jacket, 4), new_envelope(marker)])
        await sku_reaches(http, jacket, lambda v: v["free_stock"] == before + 1, "the marker receipt")
        [again] = (await http.get("/reports/suppliers")).json()
        assert {k: again[k] for k in expected} == expected

    printed = await run_rebuild("procurement", database_url)
    assert b"rebuilt" in printed
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix), FixedClock()) as http:
        [after] = (await http.get("/reports/suppliers")).json()
        assert {k: after[k] for k in expected} == expected
