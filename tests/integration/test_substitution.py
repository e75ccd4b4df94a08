"""Issue 11, alternatives for the customer, across the real inventory, order and notifier services (each
with its own database, one topic prefix, the real broker): staff list a SKU's substitutes, a backordered
message offers the one in stock with its switch endpoint, the switch (one action, idempotent) gives up
the waiting units and reserves the substitute, and nothing is refunded or told as cancelled."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from backbone.contracts.events import default_substitution_id
from backbone.testing.databases import fresh_database
from backbone.testing.fixtures import unique_name
from backbone.testing.servers import Servers
from backbone.testing.waiting import eventually
from tests.integration.inventory import harness as inventory
from tests.integration.notifier import harness as notifier
from tests.integration.order import harness as order

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def databases(servers: Servers, count: int) -> AsyncIterator[list[str]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(fresh_database(servers.pg_admin_url, unique_name("db")))
            for _ in range(count)
        ]


async def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_a_customer_switches_backordered_units_to_a_substitute_in_stock(
    servers: Servers, kafka_bootstrap: str, topic_prefix: str
) -> None:
    wanted, in_stock, sold_out = unique_name("SHOE-A"), unique_name("SHOE-B"), unique_name("SHOE-C")
    order_id = unique_name("order")
    async with databases(servers, 3) as (inventory_db, order_db, notifier_db), notifier.mail_relay() as mail:
        inventory_config = inventory.settings(inventory_db, kafka_bootstrap, topic_prefix)
        order_config = order.settings(order_db, kafka_bootstrap, topic_prefix)
        order_url = f"http://127.0.0.1:{order_config.http_port}"
        notifier_config = notifier.settings(
            notifier_db,
            kafka_bootstrap,
            topic_prefix,
            mail.port,
            backorder_eta_grace_seconds=0.0,  # no procurement here: announce without an ETA at once
            order_api_url=order_url,
        )
        async with (
            inventory.serving(inventory_config) as stock,
            order.serving(order_config) as orders,
            notifier.serving(notifier_config) as messages,
        ):
            # Staff: the substitutes of the wanted SKU, preferred first; stock of two of the SKUs.
            listed = {"substitutes": [sold_out, in_stock]}
            put = await stock.put(f"/skus/{wanted}/substitutes", json=listed)
            assert put.status_code == 200, put.text
            assert put.json()["events"] == ["SkuSubstitutesChanged"]
            again = await stock.put(f"/skus/{wanted}/substitutes", json=listed)
            assert again.status_code == 200 and again.json()["events"] == []
            got = await stock.get(f"/skus/{wanted}/substitutes")
            assert got.json() == {"sku": wanted, "substitutes": [sold_out, in_stock]}
            refused = await stock.put(f"/skus/{wanted}/substitutes", json={"substitutes": [wanted]})
            assert refused.status_code == 422 and "own substitute" in refused.text
            for sku, units in ((wanted, 2), (in_stock, 10)):
                body = {"delta": units, "reason": "opening"}
                assert (await stock.post(f"/skus/{sku}/adjustments", json=body)).status_code == 200

            # The notifier and the order service know the list and the stock before the order comes.
            async def known() -> bool:
                offered = await fetch(notifier_db, "SELECT * FROM sku_availability WHERE sku = $1", in_stock)
                lists = await fetch(notifier_db, "SELECT * FROM sku_substitutes WHERE sku = $1", wanted)
                ours = await fetch(order_db, "SELECT * FROM sku_substitutes WHERE sku = $1", wanted)
                return bool(offered and offered[0]["available"] == 10 and lists and ours)

            await eventually(known, what="the substitutes and stock to reach the notifier and order service")

            placed = order.order_json(order.order(order_id, ("1", wanted, 5, "20.00")))
            assert (await orders.post("/orders", json=placed)).status_code == 202
            await order.order_when(orders, order_id, lambda v: v["waiting_units"] == 3, "3 units waiting")

            # The backordered message offers the substitute in stock, not the sold-out one.
            async def backordered_mail() -> str | None:
                texts = [notifier.text_of(m) for m in mail.messages(to=f"{order_id}@example.com")]
                return next((t for t in texts if "not in stock right now" in t), None)

            text = await eventually(backordered_mail, what="the backordered message")
            assert text is not None
            endpoint = f"{order_url}/orders/{order_id}/lines/1/substitution"
            substitution_id = default_substitution_id("1", in_stock)
            assert f"{in_stock}: POST {endpoint}" in text and substitution_id in text, text
            assert sold_out not in text

            # The customer switches: one action, answered with the switch and the order.
            body = {"sku": in_stock, "substitution_id": substitution_id}
            switched = await orders.post(f"/orders/{order_id}/lines/1/substitution", json=body)
            assert switched.status_code == 200, switched.text
            result = switched.json()
            assert result["events"] == ["OrderLineSubstituted"]
            assert result["substitution"] | {"substituted_at": None} == {
                "substitution_id": substitution_id,
                "replaced_line_id": "1",
                "replaced_sku": wanted,
                "line_id": "1-s1",
                "sku": in_stock,
                "quantity": 3,
                "unit_price": "20.00",
                "substituted_at": None,
            }
            # The link clicked twice (the default id is the message's): the first result, no event.
            repeated = await orders.post(f"/orders/{order_id}/lines/1/substitution", json={"sku": in_stock})
            assert repeated.status_code == 200, repeated.text
            assert (
                repeated.json()["events"] == [] and repeated.json()["substitution"] == result["substitution"]
            )

            view = await order.order_when(
                orders,
                order_id,
                lambda v: v["status"] == "ready_to_ship" and len(v["lines"]) == 2,
                "inventory to confirm the switch",
            )
            old, new = sorted(view["lines"], key=lambda line: line["line_id"])
            assert (old["waiting"], old["cancelled"], old["substituted"], old["allocated"]) == (0, 0, 3, 2)
            assert (new["sku"], new["reserved_at_placement"], new["substitute_for"]) == (in_stock, 3, "1")
            assert view["shippable_now_units"] == 5
            summaries = [h["summary"] for h in view["history"]]
            assert any(s.startswith(f"switched 3 units of {wanted} to {in_stock}") for s in summaries)
            assert not any(h["event_type"] == "RefundRequested" for h in view["history"])

            await inventory.stock_reaches(stock, wanted, reserved=2, backordered=0)
            await inventory.stock_reaches(stock, in_stock, reserved=3, available=7)

            # Refusals: not listed, nothing waiting any more, unknown line, a bad body.
            for path, payload, status, detail in [
                ("1", {"sku": unique_name("OTHER")}, 409, "is not a substitute"),
                ("1", {"sku": sold_out}, 409, "no units waiting"),
                ("9", {"sku": in_stock}, 404, "no line 9"),
                ("1", {"sku": in_stock, "colour": "red"}, 422, "colour"),
                ("1", {"sku": in_stock, "substitution_id": substitution_id, "unit_price": "x"}, 422, None),
            ]:
                response = await orders.post(f"/orders/{order_id}/lines/{path}/substitution", json=payload)
                assert response.status_code == status, (payload, response.text)
                assert detail is None or detail in response.text, response.text

            # The notifier heard the switch (a release naming it) and told no cancellation.
            async def observed() -> bool:
                rows = await fetch(
                    notifier_db,
                    "SELECT 1 FROM event_store WHERE event_type = 'notifier.LineReleaseObserved'"
                    " AND body->'payload'->>'substitution_id' = $1",
                    substitution_id,
                )
                return bool(rows)

            await eventually(observed, what="the notifier to observe the switch")
            kinds = [n["kind"] for n in await notifier.notifications(messages, order_id=order_id)]
            assert kinds == ["backordered"]
