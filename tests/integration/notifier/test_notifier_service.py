"""The notifier end to end: Kafka in; email (a real SMTP server), webhooks (a real HTTP server), Kafka and
HTTP out; against the real Kafka broker and PostgreSQL server."""

import json
import time
from datetime import date, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from backbone.contracts import new_envelope
from backbone.contracts.events import SkuPolicyChanged, StockAdjusted
from backbone.testing.fixtures import publish, read_topic, unique_name
from services.notifier.channels import SignatureError, verify_signature
from services.notifier.messages import long_date
from tests.integration.notifier.harness import (
    again,
    assert_rebuild_gives_the_same_read_models,
    cancel,
    consumed,
    dispatched,
    eta,
    filled,
    mail_relay,
    notifications,
    placed,
    read_models,
    received,
    refund,
    rejected_orders,
    released,
    serving,
    settings,
    settled,
    shop_webhook,
    short,
    stock_shipped,
    text_of,
)

pytestmark = pytest.mark.integration

APRIL_1, APRIL_20 = date(2027, 4, 1), date(2027, 4, 20)


async def published_by_notifier(
    database_url: str, kafka_bootstrap: str, topic_prefix: str
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every event the notifier's log has for its topic, as read back from Kafka: by notification id,
    (partition key, envelope)."""
    conn = await asyncpg.connect(database_url)
    try:
        expected = await conn.fetchval("SELECT count(*) FROM event_store WHERE topic IS NOT NULL")
    finally:
        await conn.close()
    records = await read_topic(kafka_bootstrap, f"{topic_prefix}notifier", expected)
    # At least once: a relay stopped between Kafka's ack and its outbox delete publishes an event again.
    events = {
        e["event_id"]: (r.key.decode() if r.key else "", e)
        for r in records
        if (e := json.loads(r.value or b"null"))
    }
    assert len(events) == expected
    by_id = {e["payload"]["notification_id"]: (key, e) for key, e in events.values()}
    assert len(by_id) == expected  # one outcome per notification, never two
    for _, e in by_id.values():  # contract 3.0: the destination by reference, never an address or URL
        assert e["schema_version"] == 2 and "recipient" not in e["payload"]
        assert "@" not in json.dumps(e) and "://" not in json.dumps(e["payload"]), e
    return by_id


async def test_one_message_per_line_change_across_repeats_and_a_restart(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    jacket, hat = unique_name("JACKET"), unique_name("HAT")
    order_id, customer = unique_name("order"), unique_name("customer")
    orders, inventory, procurement = (f"{topic_prefix}{t}" for t in ("orders", "inventory", "procurement"))
    order = placed(order_id, customer, "ada@example.com", [("1", jacket, 5), ("2", hat, 1)])
    shortfall = short(order_id, "1", jacket, demanded=5, available=2)
    # Another order whose ETA never comes: it stays listed for the grace-period announcement.
    waiting = placed(unique_name("order"), unique_name("customer"), "bo@example.com", [("1", jacket, 1)])
    waiting_short = short(waiting.payload.order_id, "1", jacket, demanded=1, available=0)

    async with mail_relay() as mail:
        config = settings(database_url, kafka_bootstrap, topic_prefix, mail.port)
        async with serving(config) as http:
            await publish(producer, orders, [order, waiting])
            await publish(producer, inventory, [shortfall, waiting_short])
            await consumed(database_url, order, waiting, shortfall, waiting_short)
            assert await notifications(http, order_id=order_id) == []  # backordered waits for the ETA

            first_eta = eta(order_id, "1", jacket, APRIL_1)
            # Redelivered (same event id) and republished (new id, same fact) on every topic.
            repeats = [again(first_eta), again(shortfall), again(order)]
            await publish(producer, procurement, [first_eta, first_eta, repeats[0]])
            await publish(producer, inventory, [repeats[1]])
            await publish(producer, orders, [repeats[2]])
            await consumed(database_url, first_eta, *repeats)  # the last of each partition
            (backordered,) = await settled(http, order_id=order_id)
            assert (backordered["kind"], backordered["status"], backordered["attempts"]) == (
                "backordered",
                "sent",
                1,
            )
            assert (backordered["channel"], backordered["recipient_ref"]) == ("email", f"email:{customer}")
            assert backordered["email"] == "ada@example.com"  # the address, to roles that may see it
            assert backordered["content"]["eta"] == APRIL_1.isoformat()

            (email,) = mail.messages()
            assert email["Message-ID"] == f"<{backordered['notification_id']}@shop.example>"
            assert (str(email["To"]), str(email["From"])) == (
                "Ada <ada@example.com>",
                "Shop <orders@shop.example>",
            )
            assert email["Subject"] == f"3 of 5 units of {jacket} backordered, expected {long_date(APRIL_1)}"
            text = text_of(email)
            for expected in (
                f"3 of the 5 units of {jacket} you ordered are not in stock right now",
                "the other 2 are reserved for you",
                f"We expect them on {long_date(APRIL_1)}",
                "- Wait: we send them as soon as they arrive",
                "- Cancel the backordered part: we cancel the 3 waiting units and refund them",
                "- Ship what is available now",  # line 2 is in stock
                f"Order: {order_id}",
            ):
                assert expected in text

            # A new ETA: exactly one eta_changed, however often it is published.
            new_eta = eta(order_id, "1", jacket, APRIL_20, previous=APRIL_1)
            repeat = again(new_eta)
            await publish(producer, procurement, [new_eta, new_eta, repeat])
            await consumed(database_url, new_eta, repeat)
            rows = await settled(http, order_id=order_id)
            assert [(r["kind"], r["status"]) for r in rows] == [
                ("backordered", "sent"),
                ("eta_changed", "sent"),
            ]
            assert len(mail.messages()) == 2
            changed = text_of(mail.messages()[1])
            assert f"{long_date(APRIL_1)} -> {long_date(APRIL_20)}" in changed

        # Restarted: what it already announced is not announced again; the next change is.
        async with serving(settings(database_url, kafka_bootstrap, topic_prefix, mail.port)) as http:
            fill = filled(order_id, "1", jacket, quantity=3, remaining=0)
            repeats = [again(new_eta), again(order), again(fill)]
            await publish(producer, procurement, [repeats[0]])
            await publish(producer, orders, [repeats[1]])
            await publish(producer, inventory, [again(shortfall), fill, repeats[2]])
            await consumed(database_url, fill, *repeats)
            rows = await settled(http, order_id=order_id)
            assert [r["kind"] for r in rows] == ["backordered", "eta_changed", "fulfilled"]
            assert all(r["status"] == "sent" and r["attempts"] == 1 for r in rows)
            messages = mail.messages()
            assert len(messages) == 3
            assert len({m["Message-ID"] for m in messages}) == 3
            assert messages[2]["Subject"] == "Your order is ready to ship"
            assert f"3 backordered units of {jacket} have arrived" in text_of(messages[2])
            assert await notifications(http, order_id=waiting.payload.order_id) == []

        sent = await published_by_notifier(database_url, kafka_bootstrap, topic_prefix)
        assert {e["event_type"] for _, e in sent.values()} == {"NotificationSent"}
        assert {key for key, _ in sent.values()} == {customer}
        assert set(sent) == {r["notification_id"] for r in rows}
        assert {e["payload"]["recipient_ref"] for _, e in sent.values()} == {f"email:{customer}"}

    models = await read_models(database_url)
    assert [r["order_id"] for r in models["backorder_announcement"]] == [waiting.payload.order_id]
    await assert_rebuild_gives_the_same_read_models(database_url)


async def test_refusals_are_retried_with_backoff_then_failed_while_other_messages_go_out(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku = unique_name("BOOT")
    busy, unknown, fine, shopper = (f"{name}@example.com" for name in ("busy", "unknown", "fine", "shopper"))
    # Relays name the refused mailbox: recorded and published without it.
    refuse = {
        busy: "451 4.3.0 mailbox busy, try again later",
        unknown: f"550 5.1.1 <{unknown}>: no such user",
    }
    customers = {email: unique_name("customer") for email in (busy, unknown, fine, shopper)}
    orders = {
        email: placed(unique_name("order"), customers[email], email, [("1", sku, 3)], shop_id=shop)
        for email, shop in ((busy, "default"), (unknown, "default"), (fine, "default"), (shopper, "webshop"))
    }
    # Inventory refuses the shortfall of every order: each customer gets one "rejected" message at once.
    rejections = [short(o.payload.order_id, "1", sku, 3, 1, disposition="rejected") for o in orders.values()]

    async with mail_relay(refuse) as mail, shop_webhook(statuses=[503]) as hook:
        config = settings(
            database_url, kafka_bootstrap, topic_prefix, mail.port, shop_webhooks={"webshop": hook.setting()}
        )
        async with serving(config) as http:
            await publish(producer, f"{topic_prefix}orders", list(orders.values()))
            await publish(producer, f"{topic_prefix}inventory", rejections)
            await consumed(database_url, *orders.values(), *rejections)
            rows = {r["customer_id"]: r for r in await settled(http, kind="rejected")}
            assert len(rows) == 4

            # The relay kept refusing: 3 attempts, each after the backoff delay (0.3 s, then 0.6 s).
            failed = rows[customers[busy]]
            assert (failed["status"], failed["attempts"], failed["channel"]) == ("failed", 3, "email")
            assert failed["last_error"].startswith("recipient refused: 451 4.3.0 mailbox busy")
            first, second, third = mail.refusals(busy)
            assert second - first >= 0.3 and third - second >= 0.6
            # An unknown mailbox is not retried.
            assert (rows[customers[unknown]]["status"], rows[customers[unknown]]["attempts"]) == ("failed", 1)
            assert "550 5.1.1 <<redacted e-mail>>: no such user" in rows[customers[unknown]]["last_error"]
            assert len(mail.refusals(unknown)) == 1
            # Meanwhile the others went out: the healthy mailbox at once, the webhook on its 2nd try.
            ok = rows[customers[fine]]
            assert (ok["status"], ok["attempts"], ok["recipient_ref"]) == (
                "sent",
                1,
                f"email:{customers[fine]}",
            )
            assert datetime.fromisoformat(ok["updated_at"]) < datetime.fromisoformat(failed["updated_at"])
            (email,) = mail.messages()
            assert fine in str(email["To"])
            assert email["Subject"] == f"2 units of {sku} could not be ordered"
            hooked = rows[customers[shopper]]
            assert (hooked["status"], hooked["attempts"], hooked["channel"]) == ("sent", 2, "webhook")
            assert hooked["recipient_ref"] == "webhook:webshop"
            assert len(hook.calls) == 2  # 503, then accepted; the shop's customer gets no email
            # Each call was signed (the receiver checked it), each attempt anew; a changed body is not.
            assert hook.refused == []
            signatures = [c.headers["backorder-signature"] for c in hook.calls]
            assert all(sig.startswith("t=") and ",v1=" in sig for sig in signatures)
            last = hook.calls[1]
            signed_at = verify_signature(signatures[1], last.raw, hook.secret, now=time.time())
            tampered = last.raw.replace(b'"rejected":2', b'"rejected":1')
            assert tampered != last.raw
            with pytest.raises(SignatureError, match="signature mismatch"):
                verify_signature(signatures[1], tampered, hook.secret, now=time.time())
            with pytest.raises(
                SignatureError, match="outside the tolerance"
            ):  # the same call, replayed later
                verify_signature(signatures[1], last.raw, hook.secret, now=signed_at + 301)
            assert {c.headers["idempotency-key"] for c in hook.calls} == {hooked["notification_id"]}
            body = hook.calls[1].body
            assert (body["kind"], body["customer"]["email"], body["order_id"]) == (
                "rejected",
                shopper,
                orders[shopper].payload.order_id,
            )
            assert body["data"]["rejected"] == 2
            assert body["subject"] == f"2 units of {sku} could not be ordered"

            one = await http.get(f"/notifications/{failed['notification_id']}")
            assert one.status_code == 200
            assert one.json() == failed
            assert (await http.get("/notifications/nope")).status_code == 404
            assert (await http.get("/notifications", params={"status": "lost"})).status_code == 422
            by_status = await notifications(http, status="failed")
            assert {r["customer_id"] for r in by_status} == {customers[busy], customers[unknown]}
            newest = await notifications(http, status="failed", newest_first="true")
            assert [r["notification_id"] for r in newest] == [
                r["notification_id"] for r in reversed(by_status)
            ]
            assert len(await notifications(http, status="failed", newest_first="true", limit="1")) == 1
            # /metrics counts every attempt by channel and outcome, and shows nothing left to deliver.
            metrics = (await http.get("/metrics")).text
            attempts = {
                (sample.labels["channel"], sample.labels["outcome"]): sample.value
                for family in text_string_to_metric_families(metrics)
                if family.name == "backorder_notifications"
                for sample in family.samples
                if sample.name == "backorder_notifications_total"
            }
            assert attempts == {
                ("email", "sent"): 1,
                ("email", "failed"): 2,  # busy, twice retried
                ("email", "given_up"): 2,  # busy's third attempt, unknown's only one
                ("webhook", "failed"): 1,
                ("webhook", "sent"): 1,
            }
            assert "backorder_notifications_pending 0.0" in metrics

    # On the notifier topic, keyed by customer: the outcomes, and nothing of the retries in between.
    published = await published_by_notifier(database_url, kafka_bootstrap, topic_prefix)
    outcomes = {
        customer: (e["event_type"], e["payload"]["attempts"], e["payload"]["channel"])
        for customer, e in published.values()
    }
    assert outcomes == {
        customers[busy]: ("NotificationFailed", 3, "email"),
        customers[unknown]: ("NotificationFailed", 1, "email"),
        customers[fine]: ("NotificationSent", 1, "email"),
        customers[shopper]: ("NotificationSent", 2, "webhook"),
    }
    await assert_rebuild_gives_the_same_read_models(database_url)


async def test_sends_that_finish_together_are_recorded_together_each_once(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    """Group commit of the delivery outcomes: twelve messages in flight at once (the relay holds each
    for 0.3 s, the lane sends 8 at a time) each get exactly one outcome, and those that finish while
    another outcome is being recorded share its next transaction."""
    orders, rejections = rejected_orders(unique_name("SCARF"), 12)
    async with mail_relay(delay=0.3) as mail:
        config = settings(database_url, kafka_bootstrap, topic_prefix, mail.port, delivery_concurrency=8)
        async with serving(config) as http:
            await publish(producer, f"{topic_prefix}orders", orders)
            await publish(producer, f"{topic_prefix}inventory", rejections)
            await consumed(database_url, *orders, *rejections)
            rows = await settled(http, kind="rejected")
            assert sorted((r["status"], r["attempts"]) for r in rows) == [("sent", 1)] * 12
            assert len(mail.messages()) == 12
    conn = await asyncpg.connect(database_url)
    try:
        per_stream = await conn.fetch(
            "SELECT stream_id, count(*) AS events, min(xmin::text) AS tx FROM event_store"
            " WHERE event_type = 'NotificationSent' GROUP BY stream_id"
        )
        leased = await conn.fetchval(
            "SELECT count(*) FROM notification_delivery WHERE claim_token IS NOT NULL"
        )
    finally:
        await conn.close()
    assert len(per_stream) == 12 and all(r["events"] == 1 for r in per_stream)
    assert len({r["tx"] for r in per_stream}) < 12  # some outcomes shared a transaction
    assert leased == 0
    published = await published_by_notifier(database_url, kafka_bootstrap, topic_prefix)
    assert sorted(e["event_type"] for _, e in published.values()) == ["NotificationSent"] * 12


async def test_a_receiver_refuses_calls_signed_with_another_secret(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    """The notifier signs with the secret it was given; a shop that expects another one refuses every
    call (401), which is retried like any refusal and then recorded as failed, naming neither the URL
    nor the secret."""
    sku, customer = unique_name("BOOT"), unique_name("customer")
    order = placed(unique_name("order"), customer, "shopper@example.com", [("1", sku, 3)], shop_id="webshop")
    rejection = short(order.payload.order_id, "1", sku, 3, 1, disposition="rejected")
    async with mail_relay() as mail, shop_webhook() as hook:
        forged = hook.setting(secret="not-the-shops-secret-" + "x" * 20)
        config = settings(
            database_url, kafka_bootstrap, topic_prefix, mail.port, shop_webhooks={"webshop": forged}
        )
        async with serving(config) as http:
            await publish(producer, f"{topic_prefix}orders", [order])
            await publish(producer, f"{topic_prefix}inventory", [rejection])
            (row,) = await settled(http, customer_id=customer)
            assert (row["status"], row["attempts"], row["channel"]) == ("failed", 3, "webhook")
            assert row["last_error"].startswith("webhook answered HTTP 401: signature mismatch")
            # Read while the relay runs: the row is settled when the outcome is appended, not yet published.
            published = await published_by_notifier(database_url, kafka_bootstrap, topic_prefix)
    assert hook.calls == [] and mail.messages() == []
    assert len(hook.refused) == 3 and all(r.startswith("signature mismatch") for r in hook.refused)
    ((key, failed),) = published.values()
    assert (key, failed["event_type"], failed["payload"]["recipient_ref"]) == (
        customer,
        "NotificationFailed",
        "webhook:webshop",
    )
    assert hook.url not in json.dumps(failed) and forged["secret"] not in json.dumps(failed)


async def test_back_in_stock_subscriptions_and_their_api(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    boot, scarf = unique_name("BOOT"), unique_name("SCARF")
    inventory, supplier = f"{topic_prefix}inventory", f"{topic_prefix}supplier"

    def policy(sku: str, backorder_policy: str) -> Any:
        return new_envelope(
            SkuPolicyChanged(
                sku=sku, backorder_policy=backorder_policy, reorder_point=0, safety_stock=0, actor="ops"
            )
        )

    async with (
        mail_relay() as mail,
        serving(settings(database_url, kafka_bootstrap, topic_prefix, mail.port)) as http,
    ):
        policies = [policy(boot, "deny"), policy(scarf, "allow")]
        await publish(producer, inventory, policies)
        await consumed(database_url, *policies)

        def subscribe(sku: str, customer: str, **fields: Any) -> Any:
            body = {"customer_id": customer, "email": f"{customer}@example.com", **fields}
            return http.post(f"/skus/{sku}/subscriptions", json=body)

        refused = await subscribe(scarf, "ann")
        assert refused.status_code == 409, refused.text
        assert "can be backordered" in refused.json()["detail"]
        for invalid in (
            {"email": "not-an-address"},
            {"customer_id": " padded"},
            {"shop_id": ""},
            {"unexpected": True},
        ):
            assert (await subscribe(boot, "ann", **invalid)).status_code == 422, invalid
        assert (await http.post(f"/skus/{boot}/subscriptions", json={"email": "a@b.co"})).status_code == 422
        assert (await subscribe("%20padded", "ann")).status_code == 422

        created = await subscribe(boot, "ann", customer_name="Ann")
        assert created.status_code == 201, created.text
        assert (created.json()["customer_name"], created.json()["shop_id"]) == ("Ann", "default")
        repeated = await subscribe(boot, "ann", customer_name="Ann")
        assert repeated.status_code == 200
        assert repeated.json() == created.json()  # the same subscription, not a second one
        assert (await subscribe(boot, "bob")).status_code == 201
        assert (await subscribe(boot, "cyd")).status_code == 201
        assert (await http.delete(f"/skus/{boot}/subscriptions/cyd")).status_code == 204
        assert (await http.delete(f"/skus/{boot}/subscriptions/cyd")).status_code == 404
        listed = (await http.get(f"/skus/{boot}/subscriptions")).json()
        assert listed["backorder_policy"] == "deny"
        assert [s["customer_id"] for s in listed["subscriptions"]] == ["ann", "bob"]
        assert (await http.get(f"/skus/{scarf}/subscriptions")).json()["subscriptions"] == []

        # Stock arrives: one message per subscriber, and each subscription is used up.
        arrival = received(boot, 20, receipt_id="GRN-1")
        await publish(producer, supplier, [arrival, arrival])
        await consumed(database_url, arrival)
        rows = await settled(http, kind="back_in_stock")
        assert sorted((r["customer_id"], r["status"], r["sku"]) for r in rows) == [
            ("ann", "sent", boot),
            ("bob", "sent", boot),
        ]
        assert sorted(str(m["To"]) for m in mail.messages()) == [
            "Ann <ann@example.com>",
            "bob@example.com",
        ]
        assert {m["Subject"] for m in mail.messages()} == {f"{boot} is back in stock"}
        assert (await http.get(f"/skus/{boot}/subscriptions")).json()["subscriptions"] == []

        # More stock later tells nobody again: the subscriptions were consumed by their message.
        counted = new_envelope(
            StockAdjusted(sku=boot, delta=5, on_hand_after=25, reason="count", actor="ops")
        )
        later = received(boot, 5, receipt_id="GRN-2")
        await publish(producer, inventory, [counted])
        await publish(producer, supplier, [later])
        await consumed(database_url, counted, later)
        assert len(await notifications(http, kind="back_in_stock")) == 2
        assert len(mail.messages()) == 2

        # Bad messages go to the dead-letter topic with the reason; the consumer goes on.
        good = policy(boot, "allow")
        bad = json.loads(short("o-1", "1", boot, demanded=3, available=1).to_json())
        bad["payload"]["short_quantity"] = 5
        await producer.send_and_wait(inventory, json.dumps(bad).encode(), key=boot.encode())
        await producer.send_and_wait(inventory, b"{not json", key=boot.encode())
        await publish(producer, inventory, [good])
        await consumed(database_url, good)
        assert (await http.get(f"/skus/{boot}/subscriptions")).json()["backorder_policy"] == "allow"
        assert (await subscribe(boot, "ann")).status_code == 409
        health = (await http.get("/health")).json()
        assert health["dead_lettered"] == 2

    letters = await read_topic(kafka_bootstrap, f"{inventory}.dlq", 2)
    reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in letters)
    assert len(reasons) == 2
    assert "short_quantity must equal demanded - available" in reasons[0] + reasons[1]
    assert any(reason.startswith("not an event envelope") or "JSON" in reason for reason in reasons)
    assert {dict(r.headers)["dlq_service"] for r in letters} == {b"notifier"}
    models = await read_models(database_url)
    assert {r["sku"] for r in models["sku_watch"]} == {boot, scarf}
    await assert_rebuild_gives_the_same_read_models(database_url)


async def test_a_backorder_without_eta_is_announced_after_the_grace_period(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku, order_id = unique_name("LAMP"), unique_name("order")
    order = placed(order_id, unique_name("customer"), "eve@example.com", [("1", sku, 4)])
    shortfall = short(order_id, "1", sku, demanded=4, available=0)
    async with mail_relay() as mail:
        config = settings(
            database_url, kafka_bootstrap, topic_prefix, mail.port, backorder_eta_grace_seconds=1.0
        )
        async with serving(config) as http:
            await publish(producer, f"{topic_prefix}orders", [order])
            await publish(producer, f"{topic_prefix}inventory", [shortfall])
            (announced,) = await settled(http, order_id=order_id)
            assert (announced["kind"], announced["content"]["eta"]) == ("backordered", None)
            waited = datetime.fromisoformat(announced["requested_at"]) - shortfall.occurred_at
            assert waited.total_seconds() >= 1.0
            (email,) = mail.messages()
            assert "Our supplier has not given us a delivery date yet" in text_of(email)
            assert "None of" not in text_of(email)

            # The date comes later: it follows as an ETA change.
            dated = eta(order_id, "1", sku, APRIL_20)
            await publish(producer, f"{topic_prefix}procurement", [dated])
            await consumed(database_url, dated)
            rows = await settled(http, order_id=order_id)
            assert [r["kind"] for r in rows] == ["backordered", "eta_changed"]
            assert f"not known -> {long_date(APRIL_20)}" in text_of(mail.messages()[1])
    assert (await read_models(database_url))["backorder_announcement"] == []


async def test_two_instances_never_send_the_same_message(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    """Both delivery workers claim from one queue (the relay takes 50 ms a message, so both are busy);
    each message still goes out exactly once. The From header tells which instance sent it."""
    placed_orders, rejections = rejected_orders(unique_name("MUG"), 24)
    async with mail_relay(delay=0.05) as mail:
        first, second = (
            settings(
                database_url,
                kafka_bootstrap,
                topic_prefix,
                mail.port,
                smtp_sender=f"{name} <orders@shop.example>",
                delivery_concurrency=3,
            )
            for name in ("One", "Two")
        )
        async with serving(first) as http, serving(second):
            await publish(producer, f"{topic_prefix}orders", placed_orders)
            await publish(producer, f"{topic_prefix}inventory", rejections)
            await consumed(database_url, *placed_orders, *rejections)
            rows = await settled(http, kind="rejected")
            assert len(rows) == 24
            assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
            messages = mail.messages()
            assert sorted(m["Message-ID"] for m in messages) == sorted(
                f"<{r['notification_id']}@shop.example>" for r in rows
            )
            assert {str(m["From"]).split()[0] for m in messages} == {"One", "Two"}


async def test_a_shipment_is_mailed_once_inventory_shipped_it_with_its_tracking(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    """The warehouse's ShipmentDispatched (tracking) and inventory's StockShipped per line (the units that
    did ship) come on different topics; the mail goes out once both are in, and a shipment inventory
    never confirms (it refused it) is never mailed."""
    jacket, hat = unique_name("JACKET"), unique_name("HAT")
    order_id = unique_name("order")
    orders, inventory, fulfilment = (f"{topic_prefix}{t}" for t in ("orders", "inventory", "fulfilment"))
    order = placed(order_id, unique_name("customer"), "ada@example.com", [("1", jacket, 2), ("2", hat, 1)])
    tracking = {
        "carrier": "DHL",
        "tracking_number": "JD014600003",
        "tracking_url": "https://track.example/JD014600003",
    }
    shipment = dispatched(order_id, unique_name("shipment"), [("1", jacket, 2), ("2", hat, 1)], **tracking)
    refused = dispatched(order_id, unique_name("shipment"), [("1", jacket, 2)], carrier="UPS")
    async with (
        mail_relay() as mail,
        serving(settings(database_url, kafka_bootstrap, topic_prefix, mail.port)) as http,
    ):
        await publish(producer, orders, [order])
        # Inventory confirms one line first; the other is still on its way: nothing is mailed yet.
        jackets, hats = stock_shipped(shipment, "1"), stock_shipped(shipment, "2")
        await publish(producer, inventory, [jackets])
        await consumed(database_url, order, jackets)
        # Redelivered, and re-sent by the warehouse adapter under the same shipment id (a new event id).
        resent = again(shipment)
        await publish(producer, fulfilment, [shipment, shipment, resent, refused])
        await consumed(database_url, shipment, resent, refused)
        assert await notifications(http, order_id=order_id) == []
        await publish(producer, inventory, [hats, hats])
        await consumed(database_url, hats)
        (row,) = await settled(http, order_id=order_id)
        assert (row["kind"], row["status"], row["line_id"], row["sku"]) == ("shipped", "sent", None, None)
        assert row["content"]["shipment_id"] == shipment.payload.shipment_id
        assert row["content"]["tracking_url"] == tracking["tracking_url"]

        (email,) = mail.messages()
        assert email["Subject"] == "Items of your order shipped with DHL"
        text = text_of(email)
        for expected in (
            f"- 2 units of {jacket}",
            f"- 1 units of {hat}",
            "Carrier: DHL, tracking number JD014600003.",
            "Track the parcel: https://track.example/JD014600003",
            f"Order: {order_id}",
        ):
            assert expected in text
        # The same facts again: dropped (by business key or by shipment and line), neither mailed nor
        # dead-lettered; the refused shipment is not mailed.
        again_hats = again(hats)
        await publish(producer, inventory, [again_hats])
        await consumed(database_url, again_hats)
        assert (await http.get("/health")).json()["dead_lettered"] == 0
        assert len(await notifications(http, order_id=order_id)) == 1
        assert len(mail.messages()) == 1
    await assert_rebuild_gives_the_same_read_models(database_url)


async def test_a_cancellation_seen_before_the_shortfall_gives_no_backordered_mail(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    """The orders topic runs ahead of the inventory topic: the notifier sees the customer's cancellation
    before inventory's shortfall. It tells only what inventory then actually cancelled, and the refund."""
    sku, order_id = unique_name("LAMP"), unique_name("order")
    orders, inventory = f"{topic_prefix}orders", f"{topic_prefix}inventory"
    order = placed(order_id, unique_name("customer"), "eve@example.com", [("1", sku, 4)])
    cancellation = cancel(order_id, "1", sku, 4)
    shortfall = short(order_id, "1", sku, demanded=4, available=1)
    dated = eta(order_id, "1", sku, APRIL_20)
    async with mail_relay() as mail:
        config = settings(
            database_url, kafka_bootstrap, topic_prefix, mail.port, backorder_eta_grace_seconds=0.5
        )
        async with serving(config) as http:
            await publish(producer, orders, [order, cancellation])
            await consumed(database_url, order, cancellation)
            await publish(producer, inventory, [shortfall])
            await consumed(database_url, shortfall)
            # Not listed for the grace-period announcement either: the request is about to take it.
            assert (await read_models(database_url))["backorder_announcement"] == []
            await publish(producer, f"{topic_prefix}procurement", [dated])
            await consumed(database_url, dated)
            answer = released(order_id, "1", sku, reserved=1, dropped=3)
            money_back = refund(order_id, "1", sku, 4)
            await publish(producer, orders, [money_back])  # overtakes StockReleased: it waits for it
            await consumed(database_url, money_back)
            assert await notifications(http, order_id=order_id) == []
            await publish(producer, inventory, [answer])
            await consumed(database_url, answer)
            rows = await settled(http, order_id=order_id)
            assert [(r["kind"], r["line_id"]) for r in rows] == [("cancelled", "1"), ("refunded", "1")]
            assert rows[0]["content"]["lines"] == [{"line_id": "1", "sku": sku, "quantity": 4}]
            subjects = [m["Subject"] for m in mail.messages()]
            assert subjects == ["Cancellation confirmed", f"Refund of 79.60 EUR for 4 units of {sku}"]
            assert not any("backordered" in s for s in subjects)
    assert (await read_models(database_url))["backorder_announcement"] == []
    await assert_rebuild_gives_the_same_read_models(database_url)
