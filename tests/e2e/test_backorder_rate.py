"""400 in stock and 500 demanded -> 100 backordered; with 300 more demanded elsewhere the backorder rate
is 100 / 800 = 12.5 %. A module of its own: its fleet's reports see exactly these orders."""

import pytest

from backbone.testing.fixtures import unique_name
from backbone.testing.outsiders import Outsiders

pytestmark = pytest.mark.e2e


def line(view: dict, line_id: str = "1") -> dict:
    return next(x for x in view["lines"] if x["line_id"] == line_id)


async def test_a_shortfall_is_backordered_with_an_eta_and_counted_in_the_backorder_rate(
    shop: Outsiders,
) -> None:
    coat, scarf = unique_name("COAT"), unique_name("SCARF")
    await shop.stock_up(coat, 400)
    await shop.stock_up(scarf, 300)
    await shop.set_suppliers(
        coat, {"supplier_id": "nordwear", "lead_time_days": 7, "unit_cost": "40.00", "role": "primary"}
    )

    await shop.place_order("rate-1", [(coat, 500)], customer="alice")
    await shop.place_order("rate-2", [(scarf, 300)], customer="bob")

    first = await shop.order_when(
        "rate-1", "an ETA for the backordered units", lambda v: line(v)["eta"] is not None
    )
    assert first["status"] == "partially_backordered"
    assert (line(first)["reserved_at_placement"], line(first)["backordered"], line(first)["waiting"]) == (
        400,
        100,
        100,
    )
    second = await shop.order_status("rate-2", "ready_to_ship")
    assert line(second)["reserved_at_placement"] == 300

    stock = await shop.stock(coat)
    assert stock is not None
    assert (stock["on_hand"], stock["reserved"], stock["available"], stock["backordered"]) == (
        400,
        400,
        0,
        100,
    )
    assert [(e["order_id"], e["quantity"]) for e in stock["queue"]] == [("rate-1", 100)]

    [po] = await shop.purchase_orders(coat)
    assert po["supplier_id"] == "nordwear" and po["quantity"] >= 100
    assert line(first)["eta"] == po["expected_arrival"]

    report = await shop.call("order", "GET", "/reports")
    assert report["backorder_rate"] == {"percent": 12.5, "backordered_units": 100, "demanded_units": 800}
    assert report["fill_rate"]["percent"] == 87.5
    by_sku = {d["sku"]: d for d in report["demand_by_sku"]}
    assert by_sku[coat]["backordered"] == 100 and by_sku[scarf]["backordered"] == 0

    [email] = await shop.emails_to("alice", 1)
    assert "100 of 500 units" in email["Subject"] and "backordered" in email["Subject"]
    body = email.get_body().get_content()
    assert "cancel" in body.lower() and "wait" in body.lower()
