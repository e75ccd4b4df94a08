"""The order service reading the other services' events: order view, open backorders, reports, dead
letters and a rebuild of the read models, against the real Kafka broker and PostgreSQL server."""

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from backbone.contracts import dead_letter_topic
from backbone.testing.fixtures import publish, read_topic, unique_name
from backbone.testing.service import run_rebuild
from backbone.testing.waiting import eventually
from tests.integration.order.harness import (
    envelope,
    eta,
    fill,
    history_types,
    line,
    order,
    order_when,
    read_models,
    reserved,
    serving,
    settings,
    short,
)

pytestmark = pytest.mark.integration


async def test_order_views_backorders_reports_dead_letters_and_rebuild(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku_a, sku_b, sku_c, sku_d = (unique_name(s) for s in ("JACKET", "SCARF", "HAT", "GLOVES"))
    orders, inventory, procurement = (f"{topic_prefix}{t}" for t in ("orders", "inventory", "procurement"))
    now = datetime.now(UTC)
    today = now.date()
    a = order("A", ("1", sku_a, 500, "10.00"), placed_at=now - timedelta(days=5), customer_id="c-1")
    b = order("B", ("1", sku_b, 300, "2.50"), placed_at=now - timedelta(hours=30))
    e = order("E", ("1", sku_c, 20, "1.00"), placed_at=now - timedelta(days=10))  # inventory never answers

    async with serving(settings(database_url, kafka_bootstrap, topic_prefix)) as http:
        assert (await http.get("/orders/A")).status_code == 404
        await publish(producer, orders, [envelope(a), envelope(b), envelope(e)])
        await publish(
            producer,
            inventory,
            [envelope(short("A", "1", sku_a, 500, 400)), envelope(reserved("B", "1", sku_b, 300))],
        )
        await publish(producer, procurement, [envelope(eta("A", "1", sku_a, today + timedelta(days=10)))])
        view = await order_when(
            http, "A", lambda v: line(v, "1")["eta"] is not None, "backordered with an ETA"
        )
        await order_when(http, "B", lambda v: v["status"] == "ready_to_ship", "reserved")

        # 400 reserved at placement, 100 waiting with their ETA; the allocated units may ship now.
        assert view["status"] == "partially_backordered"
        assert (view["customer"]["tier"], view["waiting_units"], view["shippable_now_units"]) == (
            "gold",
            100,
            400,
        )
        line_a = line(view, "1")
        assert {
            k: line_a[k] for k in ("ordered", "reserved_at_placement", "backordered", "waiting", "allocated")
        } == {
            "ordered": 500,
            "reserved_at_placement": 400,
            "backordered": 100,
            "waiting": 100,
            "allocated": 400,
        }
        assert (line_a["eta"], line_a["previous_eta"], line_a["po_id"]) == (
            (today + timedelta(days=10)).isoformat(),
            None,
            "PO-1",
        )
        # The three topics are not ordered among each other: inventory's answer may come first.
        # Once both are in, the pick list of the 400 allocated units is published.
        assert sorted(history_types(view)) == [
            "FulfilmentRequested",
            "order.LineBackordered",
            "order.LineEtaChanged",
            "order.OrderRecorded",
        ]
        assert (view["closed"], view["shipped_units"], view["shipments"]) == (False, 0, [])
        summaries = {entry["event_type"]: entry["summary"] for entry in view["history"]}
        assert summaries["order.LineBackordered"] == "line 1: 400 units reserved, 100 units backordered"
        assert summaries["order.OrderRecorded"] == "order received from checkout: 1 line, 500 units"
        assert datetime.fromisoformat(view["auto_cancel_at"]) == a.placed_at + timedelta(days=30)

        # Backorder rate over the decided lines only (E is still undecided): 100 of 800 units.
        report = (await http.get("/reports")).json()
        assert report["backorder_rate"] == {"percent": 12.5, "backordered_units": 100, "demanded_units": 800}
        assert report["fill_rate"]["percent"] == 87.5
        assert report["orders_by_status"] == {"accepted": 1, "partially_backordered": 1, "ready_to_ship": 1}

        # ETA moves, part of A is filled; F is filled late against its first ETA, G on time.
        f = order("F", ("1", sku_d, 10, "3.00"), placed_at=now - timedelta(hours=48))
        g = order("G", ("1", sku_d, 5, "3.00"), placed_at=now - timedelta(hours=25))
        await publish(producer, orders, [envelope(f), envelope(g)])
        await publish(
            producer,
            procurement,
            [
                envelope(eta("A", "1", sku_a, today + timedelta(days=12), po_id="PO-2")),
                envelope(eta("F", "1", sku_d, today - timedelta(days=1))),
                envelope(eta("G", "1", sku_d, today + timedelta(days=5))),
            ],
        )
        await order_when(http, "F", lambda v: line(v, "1")["eta_known"], "an ETA")
        await order_when(http, "G", lambda v: line(v, "1")["eta_known"], "an ETA")
        await publish(
            producer,
            inventory,
            [
                envelope(short("F", "1", sku_d, 10, 0)),
                envelope(short("G", "1", sku_d, 5, 0)),
                envelope(fill("A", "1", sku_a, 30, remaining=70)),
                envelope(fill("F", "1", sku_d, 4, remaining=6)),
                envelope(fill("F", "1", sku_d, 6, remaining=0)),
                envelope(fill("G", "1", sku_d, 5, remaining=0)),
            ],
        )
        view_f = await order_when(http, "F", lambda v: v["status"] == "ready_to_ship", "filled")
        view_g = await order_when(http, "G", lambda v: v["status"] == "ready_to_ship", "filled")
        view_a = await order_when(http, "A", lambda v: v["waiting_units"] == 70, "30 units filled")
        line_a = line(view_a, "1")
        assert (line_a["eta"], line_a["previous_eta"], line_a["po_id"], line_a["first_eta"]) == (
            (today + timedelta(days=12)).isoformat(),
            (today + timedelta(days=10)).isoformat(),
            "PO-2",
            (today + timedelta(days=10)).isoformat(),
        )
        assert (line_a["filled"], line_a["allocated"], line_a["filled_at"]) == (30, 430, None)

        # Open backorders: only A still waits, placed 5 days ago.
        listed = (await http.get("/backorders")).json()
        assert [(r["order_id"], r["line_id"], r["waiting"], r["sku"]) for r in listed] == [
            ("A", "1", 70, sku_a)
        ]
        assert 4.99 < listed[0]["age_days"] < 5.1
        assert listed[0]["eta"] == line_a["eta"]
        assert len((await http.get("/backorders", params={"sku": sku_a, "customer_id": "c-1"})).json()) == 1
        assert (await http.get("/backorders", params={"sku": sku_b})).json() == []
        assert len((await http.get("/backorders", params={"min_age_days": 4, "max_age_days": 6})).json()) == 1
        assert (await http.get("/backorders", params={"max_age_days": 4})).json() == []
        refused = await http.get("/backorders", params={"min_age_days": 3, "max_age_days": 1})
        assert refused.status_code == 422
        assert (await http.get("/backorders", params={"limit": 0})).status_code == 422

        report = (await http.get("/reports")).json()
        assert [(b["bucket"], b["lines"], b["waiting_units"]) for b in report["open_backorders_by_age"]] == [
            ("<1d", 0, 0),
            ("1-3d", 0, 0),
            ("3-7d", 1, 70),
            ("7-14d", 0, 0),
            (">=14d", 0, 0),
        ]
        hours = sorted(
            (datetime.fromisoformat(line(v, "1")["filled_at"]) - datetime.fromisoformat(v["placed_at"]))
            / timedelta(hours=1)
            for v in (view_f, view_g)
        )
        assert report["time_to_fill"] == {
            "lines": 2,
            "mean_hours": round(sum(hours) / 2, 2),
            "p50_hours": round(sum(hours) / 2, 2),
            "max_hours": round(hours[1], 2),
        }
        assert 24 < hours[0] < hours[1] < 49
        days_late = (
            datetime.fromisoformat(line(view_f, "1")["filled_at"]).date() - (today - timedelta(days=1))
        ).days
        assert report["eta_accuracy"] == {
            "lines": 2,
            "on_time": 1,
            "late": 1,
            "on_time_percent": 50.0,
            "mean_days_late": float(days_late),
        }
        by_sku = {row["sku"]: row for row in report["demand_by_sku"]}
        assert by_sku[sku_a] == {
            "sku": sku_a,
            "ordered": 500,
            "reserved_at_placement": 400,
            "backordered": 100,
            "rejected": 0,
            "filled": 30,
            "cancelled": 0,
            "shipped": 0,
            "waiting": 70,
            "backorder_rate_percent": 20.0,
        }
        assert (by_sku[sku_c]["ordered"], by_sku[sku_c]["backorder_rate_percent"]) == (20, None)
        assert (by_sku[sku_d]["backordered"], by_sku[sku_d]["filled"], by_sku[sku_d]["waiting"]) == (
            15,
            15,
            0,
        )

        # Inventory's answer may overtake the order: recorded, but the order is unknown until placed.
        await publish(producer, inventory, [envelope(short("H", "1", sku_a, 8, 3))])

        async def answer_recorded() -> bool:
            conn = await asyncpg.connect(database_url)
            try:
                return bool(await conn.fetchval("SELECT count(*) FROM order_lines WHERE order_id = 'H'"))
            finally:
                await conn.close()

        await eventually(answer_recorded, what="H's shortfall to be recorded")
        assert (await http.get("/orders/H")).status_code == 404
        assert all(r["order_id"] != "H" for r in (await http.get("/backorders")).json())
        await publish(producer, orders, [envelope(order("H", ("1", sku_a, 8, "10.00")))])
        view_h = await order_when(http, "H", lambda v: v["status"] != "accepted", "placed")
        assert (view_h["status"], line(view_h, "1")["waiting"]) == ("partially_backordered", 5)

        # A contradicting event and a malformed message are dead-lettered with the reason; A is unchanged.
        await publish(producer, inventory, [envelope(reserved("A", "9", sku_a, 1))])
        await producer.send_and_wait(procurement, b'{"event_type": "BackorderEtaUpdated"', key=b"x")
        inventory_dlq = await read_topic(kafka_bootstrap, dead_letter_topic(inventory), 1)
        procurement_dlq = await read_topic(kafka_bootstrap, dead_letter_topic(procurement), 1)
        reason = dict(inventory_dlq[0].headers)["dlq_reason"].decode()
        assert "UnexpectedEvent" in reason and "order A has no line 9" in reason
        assert dict(procurement_dlq[0].headers)["dlq_reason"].decode().startswith("not an event envelope")
        assert (await http.get("/orders/A")).json()["version"] == view_a["version"]
        assert (await http.get("/health")).json()["dead_lettered"] == 2

    # The read models rebuilt from the log (the CLI, as an operator runs it) equal the live ones.
    before = await read_models(database_url)
    assert [r["order_id"] for r in before["orders"]] == ["A", "B", "E", "F", "G", "H"]
    conn = await asyncpg.connect(database_url)
    await conn.execute(
        "UPDATE order_lines SET waiting = 0, filled_at = NULL; DELETE FROM orders WHERE order_id = 'A'"
    )
    await conn.close()
    out = await run_rebuild("order", database_url)
    assert b"6 orders" in out
    assert await read_models(database_url) == before
