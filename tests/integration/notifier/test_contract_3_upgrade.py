"""Upgrading a notifier database written before contract 3.0: its log holds v1 outcomes and retries that
named the address or webhook URL, its read model a `recipient` column. Migration 003 turns the column
into `recipient_ref`, and a rebuild from the old log gives exactly the migrated rows."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from backbone.contracts import new_envelope
from backbone.contracts.events import NotificationFailedV1, NotificationSentV1
from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.eventstore import EventStore, StreamAppend
from services.notifier import projections
from services.notifier.domain import delivery_stream_id, order_stream_id
from services.notifier.events import (
    NOTIFIER_REGISTRY,
    BackInStockContent,
    DeliveryRetryScheduledV1,
    Notification,
    NotificationRequested,
)
from tests.integration.notifier.harness import read_models

pytestmark = pytest.mark.integration

NOTIFIER_MIGRATIONS = Path(projections.__file__).with_name("migrations")
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
HOOK_URL = "https://webshop.example/hooks/8c1f?token=s3cr3t"


def notification(notification_id: str, customer_id: str, shop_id: str) -> Notification:
    return Notification(
        notification_id=notification_id,
        customer_id=customer_id,
        email=f"{customer_id}@example.com",
        customer_name="Ada",
        shop_id=shop_id,
        order_id="order-1",
        line_id=None,
        content=BackInStockContent(sku="LAMP"),
    )


async def test_a_database_from_before_contract_3_migrates_and_rebuilds_to_the_same_rows(
    database_url: str,
) -> None:
    mailed, hooked = notification("n-mail", "c-1", "default"), notification("n-hook", "c-2", "webshop")
    store = EventStore(NOTIFIER_REGISTRY)
    conn = await asyncpg.connect(database_url)
    try:
        # The notifier as 2.1 left it: migrations 001 and 002, and what its code then wrote.
        files = migration_files(BACKBONE_MIGRATIONS, NOTIFIER_MIGRATIONS)
        await migrate(conn, [f for f in files if not f[0].startswith("notifier/003")])
        requested = [NotificationRequested(notification=n) for n in (mailed, hooked)]
        mail_retry = DeliveryRetryScheduledV1(
            notification_id="n-mail",
            customer_id="c-1",
            channel="email",
            recipient="c-1@example.com",
            attempts=1,
            error="recipient refused: 451 4.3.0 <c-1@example.com> busy",
            retry_at=AT + timedelta(seconds=30),
        )
        mail_sent = NotificationSentV1(
            **mailed.model_dump(include={"notification_id", "customer_id", "order_id", "line_id"}),
            kind="back_in_stock",
            channel="email",
            recipient="c-1@example.com",
            attempts=2,
        )
        hook_failed = NotificationFailedV1(
            **hooked.model_dump(include={"notification_id", "customer_id", "order_id", "line_id"}),
            kind="back_in_stock",
            channel="webhook",
            recipient=HOOK_URL,
            attempts=1,
            error="webhook answered HTTP 410: gone",
        )
        envelopes = {
            order_stream_id("order-1"): [
                new_envelope(r, occurred_at=AT, correlation_id="order-1") for r in requested
            ],
            delivery_stream_id("n-mail"): [
                new_envelope(mail_retry, occurred_at=AT + timedelta(seconds=1), correlation_id="order-1"),
                new_envelope(mail_sent, occurred_at=AT + timedelta(seconds=40), correlation_id="order-1"),
            ],
            delivery_stream_id("n-hook"): [
                new_envelope(hook_failed, occurred_at=AT + timedelta(seconds=2), correlation_id="order-1")
            ],
        }
        async with conn.transaction():
            await store.append_many(
                conn, [StreamAppend(stream, 0, events) for stream, events in envelopes.items()]
            )
        old_rows = [
            ("n-mail", "c-1", "default", mailed, "sent", "email", "c-1@example.com", 2,
             mail_retry.error, AT + timedelta(seconds=40)),
            ("n-hook", "c-2", "webshop", hooked, "failed", "webhook", HOOK_URL, 1,
             hook_failed.error, AT + timedelta(seconds=2)),
        ]  # fmt: skip
        for nid, customer, shop, n, status, channel, recipient, attempts, error, updated in old_rows:
            await conn.execute(
                "INSERT INTO notification_delivery (notification_id, kind, customer_id, shop_id, email,"
                " order_id, line_id, sku, subject, notification, correlation_id, status, channel, recipient,"
                " attempts, next_attempt_at, last_error, requested_at, updated_at)"
                " VALUES ($1, 'back_in_stock', $2, $3, $4, 'order-1', NULL, 'LAMP', $5, $6::jsonb,"
                " 'order-1', $7, $8, $9, $10, NULL, $11, $12, $13)",
                nid,
                customer,
                shop,
                n.email,
                projections.subject_of(n),
                n.model_dump_json(),
                status,
                channel,
                recipient,
                attempts,
                error,
                AT,
                updated,
            )

        # The upgrade: migration 003, as a service's start applies it.
        assert await migrate(conn, files) == ["notifier/003_recipient_ref.sql"]
        migrated = (await read_models(database_url))["notification_delivery"]
        assert [(r["notification_id"], r["recipient_ref"]) for r in migrated] == [
            ("n-hook", "webhook:webshop"),
            ("n-mail", "email:c-1"),
        ]
        assert all("recipient" not in r for r in migrated)  # the address and URL are gone from the rows

        async with conn.transaction():
            await projections.rebuild(conn, store)
        assert (await read_models(database_url))["notification_delivery"] == migrated
    finally:
        await conn.close()
