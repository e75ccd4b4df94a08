"""The incremental re-plan announces exactly what re-walking the whole queue would.

Random histories of one SKU (lines joining in random priority order, reduced, leaving, filled from free
stock; receipts, reorder points and stock levels, POs bought, acknowledged, noticed, overdue, reduced and
cancelled; days passing) are driven through
`decide`, and every decision's ETA updates are compared with the full walk over the queue it planned on
(eta.assign_etas + eta.eta_updates, the behaviour before the re-plan became incremental).
"""

import random
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

import pytest

from backbone.contracts.envelope import EventPayload
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderFulfilled,
    PurchaseOrderAcknowledged,
    ReorderPointReached,
    ShipmentNoticed,
    StockLevelChanged,
    StockReleased,
)
from services.procurement.domain import (
    Incoming,
    ProcurementState,
    ReplanOverdue,
    fold,
    overdue_trigger,
    replan_trigger,
)
from services.procurement.eta import LineKey, assign_etas, eta_updates
from services.procurement.events import PurchaseOrderOverdue
from tests.unit.procurement.scenario import SKU, Scenario, catalogue, day, receipt, terms


class Waiting(NamedTuple):
    order_id: str
    line_id: str
    quantity: int


def full_replan(
    planned: ProcurementState, incoming: Incoming, today: date, decided: list[EventPayload]
) -> list[BackorderEtaUpdated]:
    """The ETA updates of a decision as the whole-queue walk finds them."""
    queue = [Waiting(*key, units) for key, _, units in planned.queue.items()]
    arrivals = [batch for po in planned.open_purchase_orders for batch in po.arrivals()]
    assigned = assign_etas(
        queue, arrivals, free_stock=planned.stock.free_stock, today=today, sourced=planned.sourced
    )
    overdue = [e for e in decided if isinstance(e, PurchaseOrderOverdue)]
    trigger = overdue_trigger(overdue) if overdue else replan_trigger(incoming)
    return eta_updates(SKU, queue, assigned, planned.announced_etas, trigger)


@dataclass
class CheckedSku(Scenario):
    """A Scenario that checks every decision against the full walk."""

    decisions: int = 0
    updates: int = 0
    unseen: set[str] = field(default_factory=set)  # lines whose join procurement never received

    def send(self, incoming: Incoming, *, on: date | None = None) -> list[EventPayload]:
        today = on or self.today
        before = self.state
        events = super().send(incoming, on=on)
        decided = [e for e in events if not isinstance(e, BackorderEtaUpdated)]
        if decided:
            expected = full_replan(fold(before, decided), incoming, today, decided)
            # Never a date before the day it is announced.
            assert all(e.eta is None or e.eta >= today for e in expected)
            assert [e for e in events if isinstance(e, BackorderEtaUpdated)] == expected, incoming
            self.decisions += 1
            self.updates += len(expected)
        # Every waiting line has been told its ETA.
        assert all(key in self.state.announced_etas for key in self.state.queue)
        return events

    def waiting_as_inventory_sees_it(self) -> list[tuple[LineKey, int]]:
        return [
            ((w.order_id, "1"), w.quantity) for w in self.inventory.lines if w.order_id not in self.unseen
        ]


def play(seed: int, steps: int) -> CheckedSku:
    rng = random.Random(seed)
    sku = CheckedSku()
    sku.send(
        catalogue(
            terms(lead_time_days=rng.randint(1, 12), moq=rng.choice([1, 5, 20]), pack=rng.choice([1, 3]))
        )
    )
    orders = 0
    for _ in range(steps):
        lines = sku.inventory.lines
        action = rng.choices(
            [
                "join",
                "lost join",
                "reduce",
                "leave",
                "fill",
                "receipt",
                "ack",
                "asn",
                "position",
                "level",
                "day",
                "overdue",
                "terms",
            ],
            weights=[30, 2, 6, 6, 10, 6, 5, 5, 3, 3, 4, 2, 1],
        )[0]
        if action in ("join", "lost join"):
            orders += 1
            change = sku.inventory.join(f"o{orders}", rng.randint(1, 5), rng.choice(["0", "0", "1.50", "3"]))
            if action == "join":
                sku.send(change)
            else:
                sku.unseen.add(change.order_id)
        elif action in ("reduce", "leave") and lines:
            line = rng.choice(lines)
            remaining = 0 if action == "leave" or line.quantity == 1 else rng.randint(1, line.quantity - 1)
            dropped = line.quantity - remaining
            sku.send(
                StockReleased(
                    order_id=line.order_id,
                    line_id="1",
                    sku=SKU,
                    released_reserved=rng.choice([0, 0, 1]),
                    dropped_backordered=dropped,
                )
            )
            sku.send(sku.inventory.reduce(line.order_id, remaining))
            sku.unseen.discard(line.order_id)
        elif action == "fill" and lines:
            head = lines[0]
            quantity = rng.randint(1, head.quantity)
            remaining = head.quantity - quantity
            fill = BackorderFulfilled(
                order_id=head.order_id,
                line_id="1",
                sku=SKU,
                quantity=quantity,
                remaining_backordered=remaining,
                source="R",
                priority_reason="first in line",
            )
            sku.send(fill)
            sku.send(sku.inventory.reduce(head.order_id, remaining))
            sku.unseen.discard(head.order_id)
        elif action == "receipt":
            open_pos = sku.state.open_purchase_orders
            po_id = rng.choice(open_pos).po_id if open_pos and rng.random() < 0.8 else None
            sku.send(receipt(f"R{rng.random()}", po_id, rng.randint(1, 8), on=sku.today))
        elif action in ("ack", "asn") and sku.state.open_purchase_orders:
            po = rng.choice(sku.state.open_purchase_orders)
            when = day(rng.randint(0, 25))
            if action == "ack":
                quantity = rng.randint(0, po.quantity + 3)
                sku.send(
                    PurchaseOrderAcknowledged(
                        po_id=po.po_id, sku=SKU, confirmed_quantity=quantity, confirmed_date=when
                    )
                )
            else:
                quantity = rng.randint(1, max(1, po.outstanding))
                sku.send(
                    ShipmentNoticed(
                        asn_id=f"ASN{rng.randint(1, 4)}",
                        po_id=po.po_id,
                        sku=SKU,
                        quantity=quantity,
                        expected_date=when,
                    )
                )
        elif action == "position":
            available = rng.randint(0, 6)
            sku.send(
                ReorderPointReached(
                    sku=SKU,
                    on_hand=available,
                    reserved=0,
                    available=available,
                    backordered=0,
                    reorder_point=rng.randint(0, 4),
                    safety_stock=rng.randint(0, 3),
                )
            )
        elif action == "level":
            on_hand = rng.randint(0, 6)
            reserved = rng.randint(0, on_hand)
            sku.send(
                StockLevelChanged(
                    sku=SKU,
                    on_hand=on_hand,
                    reserved=reserved,
                    available=on_hand - reserved,
                    backordered=sku.inventory.units,
                )
            )
        elif action == "overdue":
            sku.send(ReplanOverdue(sku=SKU))
        elif action == "day":
            sku.today = day((sku.today - day(0)).days + rng.randint(1, 3))
        elif action == "terms":
            sku.send(catalogue(terms(lead_time_days=rng.randint(1, 12))))
        assert [
            (key, units) for key, _, units in sku.state.queue.items()
        ] == sku.waiting_as_inventory_sees_it()
    return sku


@pytest.mark.parametrize("seed", range(40))
def test_incremental_etas_equal_the_whole_queue_walk(seed: int) -> None:
    sku = play(seed, steps=150)
    assert sku.decisions > 50 and sku.updates > 0  # the history did decide and announce
