"""GET /reports/waiting: the SKUs whose backorder queues hold the most units, for the operations board,
against the real Kafka broker and PostgreSQL server."""

import pytest
from aiokafka import AIOKafkaProducer

from backbone.auth import Role
from backbone.testing.fixtures import publish, unique_name
from backbone.testing.service import bearer, token_for
from tests.integration.inventory.harness import order, receipt, serving, settings, sourcing, stock_reaches

pytestmark = pytest.mark.integration


async def test_the_skus_with_the_most_units_waiting_come_first(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    boots, gloves, scarf, plenty = (unique_name(s) for s in ("BOOTS", "GLOVES", "SCARF", "PLENTY"))
    orders, supplier, procurement = (f"{topic_prefix}{t}" for t in ("orders", "supplier", "procurement"))
    config = settings(database_url, kafka_bootstrap, topic_prefix, unknown_sku_policy="backorder")
    async with serving(config) as http:
        await publish(producer, procurement, [sourcing(boots, "nordwear")])
        await publish(producer, supplier, [receipt(boots, 2), receipt(plenty, 50)])
        await stock_reaches(http, boots, on_hand=2, sourced=True)
        await publish(
            producer,
            orders,
            [
                order("o1", boots, 5),  # 2 reserved, 3 waiting
                order("o2", boots, 4),  # 4 waiting: boots 7 units on 2 lines
                order("o3", gloves, 7),  # 7 units on 1 line: ties with boots, SKU order breaks it
                order("o4", scarf, 1),
                order("o5", plenty, 10),  # all reserved: nothing waits
            ],
        )
        await stock_reaches(http, boots, backordered=7, waiting_lines=2)
        await stock_reaches(http, gloves, backordered=7)
        await stock_reaches(http, scarf, backordered=1)
        await stock_reaches(http, plenty, reserved=10)

        waiting = (await http.get("/reports/waiting")).json()
        assert [(w["sku"], w["waiting_units"], w["waiting_lines"]) for w in waiting] == sorted(
            [(boots, 7, 2), (gloves, 7, 1), (scarf, 1, 1)], key=lambda w: (-w[1], w[0])
        )
        first_boots = next(w for w in waiting if w["sku"] == boots)
        assert first_boots == {
            "sku": boots,
            "waiting_units": 7,
            "waiting_lines": 2,
            "on_hand": 2,
            "reserved": 2,
            "available": 0,
            "backorder_policy": "allow",
            "sourced": True,
        }
        page = (await http.get("/reports/waiting", params={"limit": 1, "offset": 2})).json()
        assert [w["sku"] for w in page] == [scarf]

        # Goods for the boots: the queue empties and the SKU leaves the report.
        await publish(producer, supplier, [receipt(boots, 7)])
        await stock_reaches(http, boots, backordered=0, waiting_lines=0)
        assert [w["sku"] for w in (await http.get("/reports/waiting")).json()] == [gloves, scarf]

        assert (await http.get("/reports/waiting", params={"limit": 1001})).status_code == 422
        reader = bearer(token_for(config, Role.READER))
        assert (await http.get("/reports/waiting", headers=reader)).status_code == 200
        checkout = bearer(token_for(config, Role.CHECKOUT))
        assert (await http.get("/reports/waiting", headers=checkout)).status_code == 403
