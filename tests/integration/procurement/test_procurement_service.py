"""The procurement service end to end: inventory and supplier events in, purchase orders, ETAs and HTTP
views out, against the real Kafka broker and PostgreSQL server."""

import json
from collections import defaultdict
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from backbone.contracts import dead_letter_topic, new_envelope
from backbone.contracts.events import BackorderQueueEntry, BackorderQueueSnapshotV1
from backbone.testing.fixtures import publish, read_topic, unique_name
from backbone.testing.service import run_rebuild
from backbone.testing.waiting import eventually
from services.procurement.eta import NO_SUPPLIER
from tests.integration.procurement.harness import (
    FixedClock,
    Inventory,
    acknowledged,
    backordered,
    cancelled,
    day,
    etas_of,
    fulfilled,
    publish_raw,
    purchase_order,
    read_models,
    received,
    reorder_point_reached,
    serving,
    set_catalogue,
    settings,
    shipment,
    sku_reaches,
    supplier,
    tampered,
)

pytestmark = pytest.mark.integration


def iso(n: int) -> str:
    return day(n).isoformat()


async def test_shortfalls_become_purchase_orders_with_etas_that_follow_the_suppliers(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    jacket, boots, scarf = unique_name("JACKET"), unique_name("BOOTS"), unique_name("SCARF")
    po_1, po_2 = f"PO-{jacket}-0001", f"PO-{jacket}-0002"
    inventory, supplier_topic = f"{topic_prefix}inventory", f"{topic_prefix}supplier"
    clock, queue = FixedClock(), Inventory().queue
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix), clock) as http:
        # Catalogues: the jacket's cheaper alternate is slower, so the primary keeps it; the boots'
        # alternate arrives 25 days sooner for 5 % more, so it wins. The scarf has none yet.
        put = await set_catalogue(
            http,
            jacket,
            supplier("P", lead_time_days=10, moq=10, pack=5),
            supplier("SLOW", lead_time_days=20, unit_cost="3.50", role="alternate"),
        )
        assert put.status_code == 200, put.text
        assert put.json()["events"] == ["SupplierTermsSet", "SkuSourcingChanged"]
        assert [(s["supplier_id"], s["unit_cost"]) for s in put.json()["suppliers"]] == [
            ("P", "4.00"),
            ("SLOW", "3.50"),
        ]
        put = await set_catalogue(
            http,
            boots,
            supplier("P", lead_time_days=30, unit_cost="10.00"),
            supplier("FAST", lead_time_days=5, unit_cost="10.50", role="alternate"),
        )
        assert put.status_code == 200, put.text
        stored = (await http.get(f"/skus/{boots}/suppliers")).json()
        assert (stored["actor"], [s["role"] for s in stored["suppliers"]]) == (
            "test",  # the subject of the token that made the change
            ["primary", "alternate"],
        )

        # Day 0: inventory backorders a line of each SKU (StockShort, then the line joins the queue).
        await publish(
            producer,
            inventory,
            [
                *backordered(jacket, "o1", demanded=5, available=2),
                *queue(jacket, ("o1", 3)),
                reorder_point_reached(jacket, on_hand=2, reserved=2, backordered=3),
                *backordered(boots, "b1", demanded=4, available=0),
                *queue(boots, ("b1", 4)),
                *backordered(scarf, "c1", demanded=2, available=0),
                *queue(scarf, ("c1", 2)),
            ],
        )
        view = await sku_reaches(http, jacket, lambda v: etas_of(v) == {"o1": iso(10)}, "o1 has an ETA")
        [po] = view["open_purchase_orders"]
        assert (po["po_id"], po["supplier_id"], po["quantity"], po["expected_arrival"]) == (
            po_1,
            "P",
            10,
            iso(10),
        )
        assert (view["backordered"], view["on_order"], view["open_need"]) == (3, 10, 0)
        assert view["backorders"][0]["po_id"] == po_1

        view = await sku_reaches(http, boots, lambda v: bool(v["backorders"]), "b1 is queued")
        [po] = view["open_purchase_orders"]
        assert (po["supplier_id"], po["unit_cost"], po["expected_arrival"]) == ("FAST", "10.50", iso(5))
        assert etas_of(view) == {"b1": iso(5)}

        # The boots' customer cancels: the line leaves the queue (and its ETA the views), and the PO bought
        # for it, not confirmed yet, is cancelled.
        await publish(producer, inventory, [cancelled(boots, "b1", reserved=0, backordered=4), *queue(boots)])
        view = await sku_reaches(http, boots, lambda v: v["backordered"] == 0, "b1 cancelled")
        assert (view["backorders"], view["waiting_lines"], view["on_order"]) == ([], 0, 0)
        assert view["open_purchase_orders"] == []
        assert (await purchase_order(http, f"PO-{boots}-0001"))["status"] == "cancelled"
        assert (await http.get("/etas", params={"order_id": "b1"})).json() == []

        # No supplier, no purchase: the scarf's line is told so, and staff see the SKU in the report.
        view = await sku_reaches(http, scarf, lambda v: bool(v["backorders"]), "c1 is queued")
        assert (view["open_purchase_orders"], view["open_need"], view["sourced"]) == ([], 2, False)
        [line] = (await http.get("/etas", params={"order_id": "c1"})).json()
        assert (line["sku"], line["eta"], line["po_id"]) == (scarf, None, None)
        assert line["reason"] == NO_SUPPLIER

        # More demand the same day enlarges the unconfirmed PO (revision 2, rounded to packs of 5).
        await publish(
            producer,
            inventory,
            [*backordered(jacket, "o2", demanded=8, available=0), *queue(jacket, ("o1", 3), ("o2", 8))],
        )
        await sku_reaches(http, jacket, lambda v: etas_of(v) == {"o1": iso(10), "o2": iso(10)}, "o2's ETA")
        enlarged = await purchase_order(http, po_1)
        assert (enlarged["revision"], enlarged["quantity"], enlarged["status"]) == (2, 15, "open")

        # The supplier confirms all 15 for day 10: the PO can no longer grow, so day 3's demand gets PO 2.
        await publish(producer, supplier_topic, [acknowledged(jacket, po_1, 15, day(10))])

        async def confirmed() -> bool:
            return bool((await purchase_order(http, po_1))["confirmed_quantity"] == 15)

        await eventually(confirmed, what=f"{po_1} confirmed")
        clock.today = day(3)
        await publish(
            producer,
            inventory,
            [
                *backordered(jacket, "o3", demanded=6, available=0),
                *queue(jacket, ("o1", 3), ("o2", 8), ("o3", 6)),
            ],
        )
        view = await sku_reaches(http, jacket, lambda v: "o3" in etas_of(v), "o3's ETA")
        assert [(p["po_id"], p["quantity"], p["expected_arrival"]) for p in view["open_purchase_orders"]] == [
            (po_1, 15, iso(10)),
            (po_2, 10, iso(13)),
        ]
        # o3 needs 4 of PO 1's last units and 2 of PO 2's.
        assert etas_of(view) == {"o1": iso(10), "o2": iso(10), "o3": iso(13)}

        # A shipment notice moves PO 1 to day 12: exactly o1 and o2 are re-planned; o3 still waits for PO 2.
        clock.today = day(4)
        await publish(producer, supplier_topic, [shipment(jacket, "ASN-1", po_1, 15, day(12))])
        view = await sku_reaches(http, jacket, lambda v: etas_of(v)["o1"] == iso(12), "the ASN's dates")
        assert etas_of(view) == {"o1": iso(12), "o2": iso(12), "o3": iso(13)}
        assert "shipment notice ASN-1" in view["backorders"][0]["reason"]

        # Day 12: 10 of PO 1's 15 units arrive; inventory fills o1 and 7 units of o2 from them.
        clock.today = day(12)
        await publish(producer, supplier_topic, [received(jacket, "GRN-1", po_1, 10, supplier_id="P")])

        async def partly_received() -> dict[str, Any] | None:
            po = await purchase_order(http, po_1)
            return po if po["received_quantity"] == 10 else None

        po = await eventually(partly_received, what=f"{po_1} partly received")
        assert (po["status"], po["outstanding"], po["expected_complete"]) == ("open", 5, iso(12))
        assert po["shipments"] == [{"asn_id": "ASN-1", "quantity": 5, "expected_date": iso(12)}]
        await publish(
            producer,
            inventory,
            [
                fulfilled(jacket, "o1", 3, 0, "GRN-1"),
                fulfilled(jacket, "o2", 7, 1, "GRN-1"),
                *queue(jacket, ("o2", 1), ("o3", 6)),
            ],
        )
        view = await sku_reaches(http, jacket, lambda v: v["backordered"] == 7, "both fills")
        assert [(b["order_id"], b["position"], b["quantity"], b["eta"]) for b in view["backorders"]] == [
            ("o2", 1, 1, iso(12)),
            ("o3", 2, 6, iso(13)),
        ]
        assert (view["free_stock"], view["backordered"], view["on_order"]) == (0, 7, 15)
        open_pos = (await http.get("/purchase-orders", params={"sku": jacket, "status": "open"})).json()
        assert [p["po_id"] for p in open_pos] == [po_1, po_2]

        # Setting the scarf's catalogue buys for the line that waited uncovered, and tells it its date.
        put = await set_catalogue(http, scarf, supplier("P", lead_time_days=7))
        assert put.status_code == 200, put.text
        assert put.json()["events"] == [
            "SupplierTermsSet",
            "SkuSourcingChanged",
            "PurchaseOrderIssued",
            "BackorderEtaUpdated",
        ]
        [line] = (await http.get("/etas", params={"order_id": "c1"})).json()
        assert (line["eta"], line["po_id"]) == (iso(19), f"PO-{scarf}-0001")

        # The procurement topic carries every decision, per SKU in order.
        published = await read_topic(kafka_bootstrap, f"{topic_prefix}procurement", 17)
        by_sku: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for record in published:
            assert record.value is not None and record.key is not None
            body = json.loads(record.value)
            payload, events = body["payload"], by_sku[record.key.decode()]
            match body["event_type"]:
                case "PurchaseOrderIssued":
                    events.append(("PO", payload["po_id"], payload["revision"]))
                case "PurchaseOrderCancelled":
                    events.append(("PO cancelled", payload["po_id"]))
                case "SkuSourcingChanged":
                    events.append(("sourcing", payload["supplier_ids"]))
                case _:
                    events.append(
                        (
                            "ETA",
                            payload["order_id"],
                            payload["eta"],
                            payload["previous_eta"],
                            payload["basis"],
                        )
                    )
        assert by_sku[jacket] == [
            ("sourcing", ["P", "SLOW"]),
            ("PO", po_1, 1),
            ("ETA", "o1", iso(10), None, "purchase_order"),
            ("PO", po_1, 2),
            ("ETA", "o2", iso(10), None, "purchase_order"),
            ("PO", po_2, 1),
            ("ETA", "o3", iso(13), None, "purchase_order"),
            ("ETA", "o1", iso(12), iso(10), "purchase_order"),
            ("ETA", "o2", iso(12), iso(10), "purchase_order"),
        ]
        assert by_sku[boots] == [
            ("sourcing", ["P", "FAST"]),
            ("PO", f"PO-{boots}-0001", 1),
            ("ETA", "b1", iso(5), None, "purchase_order"),
            ("PO cancelled", f"PO-{boots}-0001"),
        ]
        assert by_sku[scarf] == [
            ("ETA", "c1", None, None, "no_supplier"),
            ("sourcing", ["P"]),
            ("PO", f"PO-{scarf}-0001", 1),
            ("ETA", "c1", iso(19), None, "purchase_order"),
        ]
        assert (await http.get("/health")).json()["dead_lettered"] == 0

    # A projection rebuilt from the log equals the live one (the CLI, as an operator runs it).
    before = await read_models(database_url)
    assert sorted(r["sku"] for r in before["procurement_skus"]) == sorted([jacket, boots, scarf])
    conn = await asyncpg.connect(database_url)
    try:  # damage them
        await conn.execute("UPDATE purchase_orders SET received_quantity = 0; DELETE FROM line_etas")
    finally:
        await conn.close()
    out = await run_rebuild("procurement", database_url)
    assert b"3 SKUs" in out
    assert await read_models(database_url) == before


async def test_bad_input_is_refused_whole_and_bad_events_are_dead_lettered(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku, untouched = unique_name("LAMP"), unique_name("UNTOUCHED")
    inventory, supplier_topic = f"{topic_prefix}inventory", f"{topic_prefix}supplier"
    stock = Inventory()
    queue = stock.queue
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix), FixedClock()) as http:
        # The admin API: every contradiction or malformed value is a 422 saying what is wrong.
        primary, alternate = (
            supplier("P", lead_time_days=5),
            supplier("A", lead_time_days=1, role="alternate"),
        )
        refusals: list[tuple[dict[str, Any], str]] = [
            ({"suppliers": [primary, {**alternate, "role": "primary"}]}, "exactly one primary"),
            ({"suppliers": [alternate]}, "exactly one primary"),
            ({"suppliers": [primary, {**primary, "role": "alternate"}]}, "once per SKU"),
            ({"suppliers": [primary, {**alternate, "currency": "USD"}]}, "could never be chosen"),
            ({"suppliers": [{**primary, "unit_cost": "4.555"}]}, "decimal places"),
            ({"suppliers": [{**primary, "lead_time_days": "5"}]}, "valid integer"),
            ({"suppliers": [{**primary, "pack_size": 0}]}, "greater than 0"),
            ({"suppliers": [{**primary, "currency": "euro"}]}, "pattern"),
            ({"suppliers": [{**primary, "discount": "5%"}]}, "Extra inputs"),
            ({"suppliers": [primary], "actor": "buyer-1"}, "actor comes from the bearer token"),
        ]
        for body, reason in refusals:
            response = await http.put(f"/skus/{untouched}/suppliers", json=body)
            assert response.status_code == 422, (body, response.text)
            assert reason in response.text, (reason, response.text)
        assert (await http.put("/skus/%20LAMP/suppliers", json={"suppliers": []})).status_code == 422
        assert (await http.get(f"/skus/{untouched}/suppliers")).status_code == 404
        assert (await http.get(f"/skus/{untouched}")).status_code == 404
        assert (await http.get("/purchase-orders/PO-NONE-0001")).status_code == 404
        assert (await http.get("/purchase-orders", params={"status": "pending"})).status_code == 422
        assert (await http.get("/etas")).status_code == 422
        assert (await http.get("/etas", params={"order_id": "nobody"})).json() == []

        assert (await set_catalogue(http, sku, primary)).status_code == 200

        # Inventory's topic: a message that is not JSON, and a queue change whose fields contradict each
        # other (a line that left with units still waiting); then the good one, which is applied as usual.
        [joined] = queue(sku, ("o1", 4))
        await publish_raw(producer, inventory, sku, b"{not json", [])
        contradicting = tampered(joined, change="left")
        await publish_raw(producer, inventory, sku, contradicting, joined.headers())
        await publish(producer, inventory, [*backordered(sku, "o1", demanded=4, available=0), joined])
        view = await sku_reaches(http, sku, lambda v: etas_of(v) == {"o1": iso(5)}, "o1's ETA")
        po_id = view["open_purchase_orders"][0]["po_id"]
        assert view["backordered"] == 4  # the contradicting change counted nothing

        # A whole-queue snapshot of contract 1.x is skipped (not dead-lettered); a more urgent line joins
        # ahead of o1, and the places are numbered by rank when read.
        retired = BackorderQueueSnapshotV1(
            sku=untouched, entries=[BackorderQueueEntry(order_id="o9", line_id="1", quantity=9)]
        )
        urgent = new_envelope(stock.queues[sku].join("o0", 1, priority_score="5.00"))
        await publish(producer, inventory, [new_envelope(retired), urgent])
        view = await sku_reaches(http, sku, lambda v: len(v["backorders"]) == 2, "o0 queued")
        assert [(b["order_id"], b["position"]) for b in view["backorders"]] == [("o0", 1), ("o1", 2)]
        [o1] = (await http.get("/etas", params={"order_id": "o1"})).json()
        assert (o1["position"], o1["quantity"]) == (2, 4)

        # The supplier topic: a receipt against our PO from another supplier contradicts the PO.
        await publish(producer, supplier_topic, [received(sku, "GRN-X", po_id, 4, supplier_id="IMPOSTOR")])
        await publish(producer, supplier_topic, [received(sku, "GRN-1", po_id, 1, supplier_id="P")])

        async def received_once() -> bool:
            return bool((await purchase_order(http, po_id))["received_quantity"] == 1)

        await eventually(received_once, what="the good receipt only")

        inventory_dlq = await read_topic(kafka_bootstrap, dead_letter_topic(inventory), 2)
        reasons = [dict(r.headers)["dlq_reason"].decode() for r in inventory_dlq]
        assert reasons[0].startswith("not an event envelope")
        assert "remaining is 0 exactly when the line left the queue" in reasons[1]
        assert [r.value for r in inventory_dlq] == [b"{not json", contradicting]
        [letter] = await read_topic(kafka_bootstrap, dead_letter_topic(supplier_topic), 1)
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers["dlq_reason"].startswith("handler failed: ProcurementConflict: receipt GRN-X")
        assert "supplier 'IMPOSTOR'" in headers["dlq_reason"]
        assert (headers["dlq_service"], headers["dlq_source_topic"]) == ("procurement", supplier_topic)
        health = (await http.get("/health")).json()
        assert health["dead_lettered"] == 3

    # Nothing of the refused input reached the log.
    conn = await asyncpg.connect(database_url)
    try:
        streams = {r["stream_id"] for r in await conn.fetch("SELECT DISTINCT stream_id FROM event_store")}
        receipts = await conn.fetch("SELECT body FROM event_store WHERE event_type = 'ReceiptRecorded'")
    finally:
        await conn.close()
    assert streams == {f"sku:{sku}"}
    assert len(receipts) == 1
