"""GET /metrics, the probes and the consumer-lag figure of a real service (inventory) on the real servers."""

from collections.abc import Mapping

import httpx
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from backbone.testing.fixtures import publish
from backbone.testing.waiting import eventually
from tests.integration.inventory.harness import order, receipt, serving, settings, stock_reaches

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics", headers={"Authorization": ""})  # open to the scraper, no token
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the series of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def series(samples: Samples, name: str) -> list[Mapping[str, str]]:
    return [dict(ls) for n, ls in samples if n == name]


async def test_metrics_show_consumption_lag_backlog_http_and_what_waits(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix)) as http:
        assert (await http.get("/health/live")).json()["status"] == "alive"
        ready = await http.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text

        sku = "SKU-METRICS"
        await publish(producer, f"{topic_prefix}supplier", [receipt(sku, 3)])
        # Stocked first: an order for a SKU inventory has never seen would be rejected (UNKNOWN_SKU_POLICY).
        await stock_reaches(http, sku, on_hand=3)
        await publish(producer, f"{topic_prefix}orders", [order(f"o-{i}", sku, 2) for i in range(5)])
        # 5 lines of 2 against 3 units: the first reserved, the second short by 1, three wholly waiting.

        seen: list[str] = []

        async def settled() -> Samples | None:
            samples = await scrape(http)
            applied = total(samples, "backorder_consumer_events_total", outcome="applied")
            lag = {
                ls: v for (n, ls), v in samples.items() if n == "backorder_consumer_lag_messages" and v > 0
            }
            waiting = value(samples, "backorder_waiting_lines")
            errors = {ls: v for (n, ls), v in samples.items() if n == "backorder_metrics_read_errors_total"}
            seen[:] = [f"applied={applied} lag={lag} waiting={waiting} read errors={errors}"]
            return samples if applied >= 6 and not lag and waiting == 4 else None

        try:
            samples = await eventually(settled, what="six applied events, no lag, 4 lines waiting")
        except AssertionError as e:
            raise AssertionError(f"{e}; the metrics showed {seen}") from None
        assert samples is not None
        assert value(samples, "backorder_waiting_units") == 7  # 1 + 2 + 2 + 2
        assert value(samples, "backorder_skus_with_waiting_lines") == 1
        assert (value(samples, "backorder_oldest_waiting_line_age_seconds") or 0) >= 0
        assert total(samples, "backorder_consumer_messages_total", topic=f"{topic_prefix}orders") == 5
        assert total(samples, "backorder_consumer_batch_messages_count") >= 1
        # Lag is reported per assigned partition of every consumed topic, and reaches zero.
        lagging = series(samples, "backorder_consumer_lag_messages")
        assert {s["topic"] for s in lagging} >= {f"{topic_prefix}orders", f"{topic_prefix}supplier"}
        # The relay published what inventory decided; nothing is left in the outbox.
        await eventually(
            lambda: _outbox_empty(http), what="the relay to publish every event and the outbox to be empty"
        )
        samples = await scrape(http)
        assert total(samples, "backorder_relay_events_published_total") > 0
        assert value(samples, "backorder_relay_active") == 1
        assert value(samples, "backorder_parked_events") == 0
        assert value(samples, "backorder_db_pool_connections", state="max") == 10
        # HTTP durations are labelled by route template, never by the raw path.
        await http.get(f"/stock/{sku}")
        await http.get("/no/such/route")
        samples = await scrape(http)
        routes = {s["route"] for s in series(samples, "backorder_http_request_duration_seconds_count")}
        assert "/stock/{sku}" in routes and "/health/ready" in routes and "<unmatched>" in routes
        assert not any(sku in route for route in routes)


async def _outbox_empty(http: httpx.AsyncClient) -> bool:
    samples = await scrape(http)
    return value(samples, "backorder_outbox_pending_events") == 0 and (
        total(samples, "backorder_relay_events_published_total") > 0
    )
