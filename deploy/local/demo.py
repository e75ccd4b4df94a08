#!/usr/bin/env python3
"""`make demo`: a winter promotion at an outdoor shop, played against the services `make run` started.

Everything happens as the system's users do it: the checkout publishes OrderPlaced to Kafka, the jacket
supplier trades by EDI (it picks up our X12 850 from the adapter's outbox folder and drops its 855
acknowledgement, 856 ship notice and 861 receipt in the inbox), the warehouse's adapter
ships what the order service releases to it (FulfilmentRequested -> ShipmentDispatched), staff and
customers call the HTTP APIs. Each run uses SKUs and orders of its own (the deployment keeps earlier
runs' data), waits for every step with a deadline, and ends with a summary: orders, their status and
shipments, backorders with ETAs, purchase orders, the messages the notifier sent (readable in the mail sink, http://127.0.0.1:8025/messages)
and the backorder rate.
"""

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from infra import DEMO_EDI_PARTNERS, EDI_INBOX_DIR, EDI_OUTBOX_DIR, HOST, SERVICES, InfraInfo

from backbone.auth import development_token
from backbone.kafka import reliable_producer
from backbone.testing.edi_documents import x12_855, x12_856, x12_861
from backbone.testing.outsiders import Json, Outsiders, RunningServices, Warehouse
from backbone.testing.waiting import eventually

TIMEOUT = 60.0
# The jacket's fast alternate supplier trades by X12 EDI: a partner of the adapter's (DEMO_EDI_PARTNERS).
[ACME_EDI] = [p for p in DEMO_EDI_PARTNERS if p["supplier_id"] == "acme"]
NORDWEAR = {"supplier_id": "nordwear", "lead_time_days": 12, "unit_cost": "38.00", "role": "primary"}
ACME = {"supplier_id": "acme", "lead_time_days": 5, "unit_cost": "40.50", "role": "alternate"}
ALPINE = {"supplier_id": "alpine-boots", "lead_time_days": 8, "unit_cost": "55.00", "role": "primary"}


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def first_line(view: Json) -> Json:
    return dict(view["lines"][0])


async def wait_for(shop: Outsiders, order_id: str, what: str, check: Callable[[Json], bool]) -> Json:
    return await shop.order_when(order_id, what, check, timeout=TIMEOUT)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [[str(c) for c in header], *[[("-" if c is None else str(c)) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


async def play(shop: Outsiders, warehouse: Warehouse, run: str) -> None:
    jacket, boots, lamp = f"JACKET-{run}", f"BOOTS-{run}", f"LAMP-{run}"
    customers = ["ana", "ben", "chloe", "dev", "emma", "farid", "gus", "hana"]
    order_ids = {c: f"{run}-{c}" for c in customers}
    start = datetime.now(UTC) - timedelta(hours=2)

    say("Staff stock the shop and maintain the supplier catalogue")
    await shop.stock_up(jacket, 40)
    await shop.stock_up(boots, 30)
    await shop.set_suppliers(jacket, NORDWEAR, ACME)
    await shop.set_suppliers(boots, ALPINE)
    await shop.set_policy(lamp, "deny")  # a one-off item: no backorders
    await shop.stock_up(lamp, 3)
    print(
        f"  {jacket}: 40 on hand (nordwear 12 days, acme 5 days +7% and by EDI); {boots}: 30; {lamp}: 3, deny"
    )

    say("The promotion: eight customers order through the checkout (OrderPlaced on Kafka)")
    plan = [("ana", 10, 2), ("ben", 15, 0), ("chloe", 10, 4), ("dev", 12, 0), ("emma", 8, 2),
            ("farid", 10, 0), ("gus", 6, 2), ("hana", 4, 0)]  # fmt: skip
    for n, (customer, jackets, pairs) in enumerate(plan):
        lines = [(jacket, jackets)] + ([(boots, pairs)] if pairs else [])
        tier = "gold" if customer in ("dev", "hana") else "standard"
        await shop.place_order(
            order_ids[customer], lines, customer=order_ids[customer], tier=tier,
            placed_at=start + timedelta(minutes=5 * n), unit_price="89.00",
        )  # fmt: skip
        await wait_for(shop, order_ids[customer], "inventory's answer", lambda v: v["status"] != "accepted")
    await shop.place_order(f"{run}-ivan", [(lamp, 5)], customer=f"{run}-ivan", unit_price="120.00")
    for customer in customers:
        await wait_for(
            shop, order_ids[customer], "an ETA for what waits",
            lambda v: all(x["eta_known"] or x["waiting"] == 0 for x in v["lines"]),
        )  # fmt: skip
    await wait_for(shop, f"{run}-ivan", "inventory's answer", lambda v: first_line(v)["decided"])
    views = [await shop.call("order", "GET", f"/orders/{order_ids[c]}") for c in customers]
    short = [v["customer"]["customer_id"].removeprefix(f"{run}-") for v in views if v["waiting_units"]]
    print(f"  jackets ran out: {', '.join(short)} wait in the queue, each with an ETA")

    say("Procurement bought the shortfall; the supplier confirms, then ships later than promised")
    [po] = await shop.purchase_orders(jacket)
    print(
        f"  {po['po_id']}: {po['quantity']} units from {po['supplier_id']}, expected {po['expected_arrival']}"
    )
    sent = await edi_file(EDI_OUTBOX_DIR / "acme", f"850-{po['po_id']}-", "the 850 in acme's outbox")
    print(f"  the EDI adapter wrote {sent.name} for acme: " + _segment(sent.read_text(), "BEG"))
    envelope = {"sender": ACME_EDI["their_id"], "receiver": ACME_EDI["our_id"], "at": datetime.now(UTC)}
    # acme's control numbers for this run: the adapter remembers earlier runs' and ignores a repeat.
    control = int(time.time() * 10) % 10**8 * 10
    # acme's documents name the PO by the number the 850 gave it (a short one if ours is too long for X12).
    reference = (await shop.call("edi", "GET", f"/purchase-orders/{po['po_id']}"))["reference"]
    promised = date.fromisoformat(po["expected_arrival"])
    await drop(
        f"{run}-855.edi",
        x12_855(reference, [(jacket, po["quantity"], promised)], control=control + 1, **envelope),
    )
    late = promised + timedelta(days=4)
    lines = [(reference, jacket, po["quantity"])]
    await drop(f"{run}-856.edi", x12_856(f"ASN-{run}", late, lines, control=control + 2, **envelope))
    acks = [p.name for p in sorted((EDI_OUTBOX_DIR / "acme").glob("997-*"), key=lambda p: p.stat().st_mtime)][
        -2:
    ]
    print(
        f"  acme acknowledged it (855) and sent a ship notice (856); the adapter answered {', '.join(acks)}"
    )
    waiting = [
        c for c in customers if (await shop.call("order", "GET", f"/orders/{order_ids[c]}"))["waiting_units"]
    ]
    for customer in waiting:
        await wait_for(
            shop, order_ids[customer], "the new ETA", lambda v: first_line(v)["eta"] == late.isoformat()
        )
    print(f"  shipment notice: arrival {late}; {len(waiting)} waiting customers told the new date")

    say("Gus gives up his backordered jackets; the others keep waiting")
    await shop.call("order", "POST", f"/orders/{order_ids['gus']}/lines/1/cancel-backordered", json={})
    await wait_for(shop, order_ids["gus"], "the cancellation", lambda v: first_line(v)["waiting"] == 0)

    say("Part of the purchase order arrives: the queue is served first come, first served")
    receipt = x12_861(
        f"RCV-{run}", datetime.now(UTC), [(reference, jacket, 20)], control=control + 3, **envelope
    )
    await drop(f"{run}-861.edi", receipt)
    print("  the warehouse's receiving advice (861) for 20 units went through the EDI inbox")
    await wait_for(shop, order_ids["dev"], "filled", lambda v: first_line(v)["filled"] > 0)

    say("The warehouse ships what may leave now (partial shipments for ship_available orders)")
    shipped = []
    for order_id in [*order_ids.values(), f"{run}-ivan"]:
        ready = (await shop.call("order", "GET", f"/orders/{order_id}"))["shippable_now_units"]
        if not ready:
            continue
        pick_list = await warehouse.pick_list(
            order_id, f"{ready} units", lambda p, n=ready: sum(line.quantity for line in p.lines) == n
        )
        await warehouse.ship(pick_list, tracking_number=f"JD{uuid.uuid4().int % 10**10:010d}")
        shipped.append(order_id)
    for order_id in shipped:
        await wait_for(shop, order_id, "shipped", lambda v: v["status"] in ("shipped", "partially_shipped"))
    print(f"  {len(shipped)} parcels left the warehouse, each with tracking; the customers were told")

    say("Ivan's lamp: 3 of 5 units sold, 2 refused; a subscriber hears when it is back")
    watcher = f"{run}-julia"
    body = {"customer_id": watcher, "email": f"{watcher}@example.com"}
    await shop.call("notifier", "POST", f"/skus/{lamp}/subscriptions", expect=201, json=body)
    await shop.receive_goods(lamp, 6)

    async def told(customer_id: str, kind: str) -> bool:
        sent = await shop.call("notifier", "GET", "/notifications", params={"customer_id": customer_id})
        return any(n["kind"] == kind and n["status"] == "sent" for n in sent)

    await eventually(
        lambda: told(watcher, "back_in_stock"), timeout=TIMEOUT, what="the back-in-stock message"
    )
    await eventually(lambda: told(order_ids["dev"], "fulfilled"), timeout=TIMEOUT, what="dev's message")
    await replenishment(shop, jacket, boots)
    await summary(shop, run, [*order_ids.values(), f"{run}-ivan"], [jacket, boots, lamp])


async def replenishment(shop: Outsiders, jacket: str, boots: str) -> None:
    """Purchasing's side: what today's demand recommends, and auto mode applying it."""
    say("Purchasing: today's demand recommends reorder points; boots go on auto")
    path = "/skus/{}/replenishment"
    suggested = await shop.call("procurement", "PUT", path.format(jacket), json={"mode": "suggest"})
    r = suggested["recommendation"]
    print(
        f"  {jacket} (suggest): reorder point {r['reorder_point']}, safety stock {r['safety_stock']}"
        f" from {r['demand_per_day']:.1f} units/day (sigma {r['demand_sigma_per_day']:.1f}) over a"
        f" {r['lead_time_days']:g}-day lead time at z={r['z']:.3f}: {r['basis']}"
    )
    auto = await shop.call("procurement", "PUT", path.format(boots), json={"mode": "auto"})
    planned = auto["recommendation"]["reorder_point"]

    async def applied() -> Json | None:
        stock = await shop.stock(boots)
        return stock if stock is not None and stock["reorder_point"] == planned else None

    stock = await eventually(applied, timeout=TIMEOUT, what="inventory applying the boots' reorder point")
    orders = await eventually(
        lambda: shop.purchase_orders(boots), timeout=TIMEOUT, what="a purchase order for the boots"
    )
    print(
        f"  {boots} (auto): inventory's reorder point is now {stock['reorder_point']} (safety stock"
        f" {stock['safety_stock']}, set by procurement:auto); {stock['available']} available, so procurement"
        f" bought {sum(po['quantity'] for po in orders)} from {orders[0]['supplier_id']} before anyone waits"
    )
    signals = await shop.call("procurement", "GET", "/reports/demand-signals", params={"days": 1})
    ours = [s for s in signals["most_backordered"] if s["sku"] in (jacket, boots)]  # earlier runs' too
    top = ", ".join(f"{s['sku']} {s['backordered']} of {s['demanded']} units" for s in ours)
    lost = sum(s["cancelled"] for s in signals["most_cancelled"] if s["sku"] in (jacket, boots))
    print(f"  demand signals today: backordered {top}; {lost} waiting units lost to cancellations")


async def edi_file(folder: Path, prefix: str, what: str) -> Path:
    async def found() -> Path | None:
        return next(iter(sorted(folder.glob(f"{prefix}*"))), None) if folder.exists() else None  # noqa: ASYNC240

    return await eventually(found, timeout=TIMEOUT, what=what)


async def drop(name: str, interchange: str) -> None:
    """Put an interchange in the adapter's inbox as a supplier's SFTP client does (a temporary name, then
    the real one) and wait until the adapter has filed it away as processed."""
    EDI_INBOX_DIR.mkdir(parents=True, exist_ok=True)
    temporary = EDI_INBOX_DIR / f"{name}.part"
    temporary.write_text(interchange, encoding="ascii")
    temporary.rename(EDI_INBOX_DIR / name)

    async def handled() -> Path | None:
        for folder in ("processed", "rejected"):
            found = sorted((EDI_INBOX_DIR / folder).glob(f"*-{name}"))
            if found:
                return found[-1]
        return None

    where = await eventually(handled, timeout=TIMEOUT, what=f"the adapter to handle {name}")
    if where.parent.name == "rejected":
        reason = where.with_name(where.name + ".reason").read_text()
        raise RuntimeError(f"the EDI adapter rejected {name}: {reason}")


def _segment(text: str, tag: str) -> str:
    return next((s.strip() for s in text.split("~") if s.strip().startswith(tag + "*")), "")


def describe(line: Json) -> str:
    text = f"{line['sku'].split('-')[0]} x{line['ordered']}: {line['allocated']} allocated"
    for field, label in (
        ("shipped", "shipped"), ("waiting", "waiting"), ("rejected", "refused"), ("cancelled", "cancelled")
    ):  # fmt: skip
        if line[field]:
            text += f", {line[field]} {label}"
    return text


async def summary(shop: Outsiders, run: str, order_ids: Sequence[str], skus: Sequence[str]) -> None:
    say(f"Summary of run {run}")
    orders = [await shop.call("order", "GET", f"/orders/{o}") for o in order_ids]
    print("\nOrders")
    table(
        [
            (
                o["order_id"],
                o["customer"]["tier"],
                o["status"] + (" (closed)" if o.get("closed") else ""),
                "; ".join(map(describe, o["lines"])),
            )
            for o in orders
        ],
        ["order", "tier", "status", "lines"],
    )
    partly = sum(o["status"] == "partially_shipped" for o in orders)
    wholly = sum(o["status"] == "shipped" for o in orders)
    print(f"  shipped: {wholly + partly} of {len(orders)} orders ({wholly} wholly, {partly} in part)")
    print("\nBackorders still waiting (oldest first)")
    backorders = [
        b for sku in skus for b in await shop.call("order", "GET", "/backorders", params={"sku": sku})
    ]
    table(
        [(b["order_id"], b["sku"], b["waiting"], b["eta"], b["previous_eta"], round(b["age_days"], 2))
         for b in backorders],
        ["order", "sku", "waiting", "eta", "was", "age (days)"],
    )  # fmt: skip
    print("\nPurchase orders")
    pos = [p for sku in skus for p in await shop.purchase_orders(sku)]
    table(
        [(p["po_id"], p["supplier_id"], p["quantity"], p["received_quantity"], p["expected_arrival"],
          p["confirmed_date"], p["status"]) for p in pos],
        ["po", "supplier", "qty", "received", "expected", "confirmed", "status"],
    )  # fmt: skip
    print("\nMessages sent by the notifier")
    messages = [
        n for o in [*order_ids, f"{run}-julia"]
        for n in await shop.call("notifier", "GET", "/notifications", params={"customer_id": o})
    ]  # fmt: skip
    table(
        [(n["customer_id"], n["kind"], n["channel"], n["status"], n.get("subject") or "") for n in messages],
        ["customer", "kind", "channel", "status", "subject"],
    )
    report = await shop.call("order", "GET", "/reports")
    rate, fill = report["backorder_rate"], report["fill_rate"]
    print(
        f"\nBackorder rate (every order in this deployment): {rate['percent']} % "
        f"({rate['backordered_units']} of {rate['demanded_units']} units); fill rate {fill['percent']} %"
    )
    print("E-mails: http://127.0.0.1:8025/messages")


async def main() -> int:
    info = InfraInfo.load()
    if info is None:
        print("the infrastructure is not running: use `make demo`, which starts it", file=sys.stderr)
        return 1
    # The services' secret, as `make run` gave it to them; the demo acts as one person in every role.
    secret = info.env().get("AUTH_TOKEN_SECRET") or os.environ.get("AUTH_TOKEN_SECRET")
    if not secret:
        print("no AUTH_TOKEN_SECRET in the infrastructure's settings: run `make run` first", file=sys.stderr)
        return 1
    run = f"demo{uuid.uuid4().hex[:5]}"
    token = development_token(secret, "demo", ttl_seconds=3600)
    services = RunningServices(
        {name: f"http://{HOST}:{port}" for name, port in SERVICES.items()}, "backorder.", token
    )
    producer = reliable_producer(info.kafka_bootstrap_servers)
    await producer.start()
    try:
        async with Warehouse(services, producer, info.kafka_bootstrap_servers) as warehouse:
            await play(Outsiders(services, producer), warehouse, run)
    finally:
        await producer.stop()
        await services.http.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
