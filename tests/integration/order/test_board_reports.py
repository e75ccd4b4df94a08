"""The order service's reports for the operations board: backorder and fill rate per hour and per day of
placement, and the ageing of the lines still waiting, against the real Kafka broker and PostgreSQL."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from backbone.auth import Role
from backbone.testing.fixtures import publish, unique_name
from backbone.testing.service import bearer, token_for
from services.order.reports import bucket_starts
from tests.integration.order.harness import (
    envelope,
    fill,
    order,
    order_when,
    reserved,
    serving,
    settings,
    short,
)

pytestmark = pytest.mark.integration


def by_start(points: list[dict[str, Any]]) -> dict[datetime, dict[str, Any]]:
    return {datetime.fromisoformat(p["start"]): p for p in points}


async def test_rates_over_time_and_the_ageing_of_waiting_lines(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    coat, hat = unique_name("COAT"), unique_name("HAT")
    orders, inventory = f"{topic_prefix}orders", f"{topic_prefix}inventory"
    now = datetime.now(UTC)
    placed = {
        "A": now - timedelta(hours=30),  # outside the last 24 hours, inside the last 7 days
        "B": now - timedelta(hours=3),
        "C": now - timedelta(minutes=10),
        "D": now - timedelta(days=20),
        "E": now - timedelta(hours=2),  # inventory never answers: not decided, not in the rates
    }
    a = order("A", ("1", coat, 10, "5.00"), placed_at=placed["A"])
    b = order("B", ("1", coat, 4, "5.00"), ("2", hat, 6, "2.00"), placed_at=placed["B"])
    c = order("C", ("1", hat, 5, "2.00"), placed_at=placed["C"])
    d = order("D", ("1", hat, 2, "2.00"), placed_at=placed["D"])
    e = order("E", ("1", coat, 9, "5.00"), placed_at=placed["E"])
    config = settings(database_url, kafka_bootstrap, topic_prefix)

    async with serving(config) as http:
        await publish(producer, orders, [envelope(x) for x in (a, b, c, d, e)])
        await publish(
            producer,
            inventory,
            [
                envelope(reserved("A", "1", coat, 10)),
                envelope(short("B", "1", coat, 4, 1)),  # 1 reserved, 3 backordered
                envelope(reserved("B", "2", hat, 6)),
                envelope(short("C", "1", hat, 5, 0)),
                envelope(short("D", "1", hat, 2, 0)),
                envelope(fill("D", "1", hat, 2, remaining=0)),  # D waited, and waits no more
            ],
        )
        await order_when(http, "B", lambda v: v["status"] == "partially_backordered", "decided")
        await order_when(http, "C", lambda v: v["waiting_units"] == 5, "backordered")
        await order_when(
            http, "D", lambda v: v["waiting_units"] == 0 and v["lines"][0]["filled"] == 2, "filled"
        )
        await order_when(http, "A", lambda v: v["status"] == "ready_to_ship", "reserved")

        hourly = (await http.get("/reports/rates")).json()
        assert (hourly["bucket"], hourly["sku"], len(hourly["points"])) == ("hour", None, 24)
        starts = [datetime.fromisoformat(p["start"]) for p in hourly["points"]]
        assert starts == bucket_starts(datetime.fromisoformat(hourly["generated_at"]), "hour", 24)
        assert all(s.minute == 0 and s.second == 0 for s in starts)
        points = by_start(hourly["points"])
        hour_of = {k: v.replace(minute=0, second=0, microsecond=0) for k, v in placed.items()}
        figures = {k: v for k, v in points[hour_of["B"]].items() if k not in ("start", "end")}
        assert figures == {
            "lines": 2,
            "ordered_units": 10,
            "reserved_at_placement_units": 7,
            "backordered_units": 3,
            "backorder_rate_percent": 30.0,
            "fill_rate_percent": 70.0,
        }
        end = datetime.fromisoformat(points[hour_of["B"]]["end"])
        assert end - hour_of["B"] == timedelta(hours=1)
        assert (
            points[hour_of["C"]]["backorder_rate_percent"],
            points[hour_of["C"]]["fill_rate_percent"],
        ) == (
            100.0,
            0.0,
        )
        # Orders outside the window (A, D) and undecided lines (E) count nowhere; empty hours are null.
        assert sum(p["ordered_units"] for p in hourly["points"]) == 10 + 5
        assert sum(p["lines"] for p in hourly["points"]) == 3
        empty = [p for s, p in points.items() if s not in (hour_of["B"], hour_of["C"])]
        assert all(p["backorder_rate_percent"] is None and p["ordered_units"] == 0 for p in empty)

        daily = (await http.get("/reports/rates", params={"bucket": "day", "buckets": 7, "sku": coat})).json()
        assert (daily["bucket"], daily["sku"], len(daily["points"])) == ("day", coat, 7)
        assert all(datetime.fromisoformat(p["start"]).hour == 0 for p in daily["points"])
        # The coat's decided lines of the week: A (10 reserved) and B's first line (1 of 4 reserved).
        assert sum(p["ordered_units"] for p in daily["points"]) == 14
        assert sum(p["backordered_units"] for p in daily["points"]) == 3

        ageing = (await http.get("/reports/ageing")).json()
        assert (ageing["lines"], ageing["waiting_units"]) == (2, 3 + 5)
        oldest = datetime.fromisoformat(ageing["oldest_placed_at"])
        assert abs(oldest - placed["B"]) < timedelta(milliseconds=1)
        buckets = {x["bucket"]: (x["lines"], x["waiting_units"]) for x in ageing["buckets"]}
        assert list(buckets) == ["<1h", "1-6h", "6-24h", "1-3d", "3-7d", "7-14d", "14-30d", ">=30d"]
        assert buckets == {
            "<1h": (1, 5),
            "1-6h": (1, 3),
            "6-24h": (0, 0),
            "1-3d": (0, 0),
            "3-7d": (0, 0),
            "7-14d": (0, 0),
            "14-30d": (0, 0),
            ">=30d": (0, 0),
        }
        assert [(x["lower_hours"], x["upper_hours"]) for x in ageing["buckets"]][:2] == [(0, 1), (1, 6)]
        assert ageing["buckets"][-1]["upper_hours"] is None
        of_hat = (await http.get("/reports/ageing", params={"sku": hat})).json()
        assert (of_hat["sku"], of_hat["lines"], of_hat["waiting_units"]) == (hat, 1, 5)

        # Bounded: at most a year of buckets; read-only roles may look, a checkout system may not.
        assert (await http.get("/reports/rates", params={"buckets": 367})).status_code == 422
        assert (await http.get("/reports/rates", params={"bucket": "week"})).status_code == 422
        reader = bearer(token_for(config, Role.READER))
        assert (await http.get("/reports/ageing", headers=reader)).status_code == 200
        checkout = bearer(token_for(config, Role.CHECKOUT))
        assert (await http.get("/reports/rates", headers=checkout)).status_code == 403
        assert (await http.get("/reports/ageing", headers={"Authorization": ""})).status_code == 401


def test_buckets_end_with_the_one_holding_now() -> None:
    now = datetime(2026, 3, 1, 14, 37, 5, tzinfo=UTC)
    assert bucket_starts(now, "hour", 3) == [
        datetime(2026, 3, 1, 12, tzinfo=UTC),
        datetime(2026, 3, 1, 13, tzinfo=UTC),
        datetime(2026, 3, 1, 14, tzinfo=UTC),
    ]
    assert bucket_starts(now, "day", 2) == [
        datetime(2026, 2, 28, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    ]
