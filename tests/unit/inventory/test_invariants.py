"""Random command sequences (fixed seeds) with every invariant checked after every step."""

import random
from collections import Counter
from decimal import Decimal

import pytest

from backbone.contracts.envelope import EventPayload
from backbone.contracts.events import (
    BackorderFulfilled,
    BackorderQueueChanged,
    ReorderPointReached,
    StockAdjusted,
    StockCounted,
    StockLevelChanged,
    StockReleased,
    StockReserved,
    StockShipped,
    StockShort,
)
from services.inventory.domain import LineRef, SkuState, StockConflict, allocation_order
from services.inventory.events import StockReceived
from services.inventory.priority import FIRST_COME_FIRST_SERVED, WEIGHTED, PriorityPolicy
from tests.unit.inventory.harness import SkuHarness, of_type, published_queue

TIERS = ("standard", "silver", "gold", "platinum")


class RandomShopper:
    """Plays random commands against a SKU and checks every invariant after each of them."""

    def __init__(self, seed: int, priority: PriorityPolicy) -> None:
        self.random = random.Random(seed)
        self.sku = SkuHarness(priority=priority)
        self.ordered: dict[LineRef, int] = {}
        self.below_since_last_alert = False  # whether the last alert still covers the current stay
        self.step = 0

    def play(self, steps: int) -> None:
        for self.step in range(steps):
            before = self.sku.state
            try:
                events = self.random_command()
            except StockConflict:
                assert self.sku.state == before, "a refused command must change nothing"
                continue
            self.check_step(events, before)

    def random_command(self) -> list[EventPayload]:
        sku, rnd = self.sku, self.random
        roll = rnd.random()
        if roll < 0.45 or not self.ordered:
            order_id = f"O{len(self.ordered) + 1}"
            quantity = rnd.randint(1, 30)
            self.ordered[LineRef(order_id, "1")] = quantity
            return sku.reserve(
                order_id,
                quantity,
                minute=rnd.randint(0, 600),
                tier=rnd.choice(TIERS),  # type: ignore[arg-type]
                urgent=rnd.random() < 0.2,
                unit_price=Decimal(rnd.randint(1, 200)),
            )
        if roll < 0.65:
            return sku.receive(rnd.randint(1, 40))
        if roll < 0.8:
            line = rnd.choice(list(self.ordered))
            only_waiting = rnd.random() < 0.3
            quantity = rnd.randint(1, 30)
            return sku.cancel(
                line.order_id, quantity, cancellation_id=f"c{self.step}", only_waiting=only_waiting
            )
        if roll < 0.86:
            delta = rnd.choice([d for d in range(-20, 31) if d])
            return sku.adjust(delta, adjustment_id=f"a{self.step}")
        if roll < 0.92:  # sometimes more than the line holds: refused
            line = rnd.choice(list(self.ordered))
            held = sku.state.reservations.get(line, 0)
            quantity = rnd.randint(1, held + 2)
            return sku.ship(line.order_id, quantity, shipment_id=f"s{self.step}")
        if roll < 0.95:
            return sku.count(max(0, sku.state.on_hand + rnd.randint(-15, 15)), count_id=f"k{self.step}")
        policy = rnd.choice(["allow", "deny", "cap"])
        return sku.set_policy(
            policy,  # type: ignore[arg-type]
            cap=rnd.randint(0, 40) if policy == "cap" else None,
            reorder_point=rnd.randint(0, 15),
            safety_stock=rnd.randint(0, 5),
        )

    def check_published_queue(self) -> None:
        """Other services see the same queue, in the same order, from the per-line changes alone."""
        expected = [(e.order_id, e.remaining) for e in allocation_order(self.sku.state)]
        assert published_queue(self.sku.log) == expected

    def check_step(self, events: list[EventPayload], before: SkuState) -> None:
        state, log = self.sku.state, self.sku.log
        assert 0 <= state.reserved <= state.on_hand
        assert state.reserved == sum(state.reservations.values())
        assert all(units > 0 for units in state.reservations.values())
        assert all(entry.remaining > 0 for _, entry, _ in state.queue.items())
        assert not state.queue or state.available == 0, "no line waits while stock is available"
        received = sum(e.quantity for e in of_type(log, StockReceived))
        adjusted = sum(e.delta for e in of_type(log, StockAdjusted))
        counted = sum(e.difference for e in of_type(log, StockCounted))
        shipped = sum(e.quantity for e in of_type(log, StockShipped))
        assert state.on_hand == received + adjusted + counted - shipped
        levels = of_type(events, StockLevelChanged)
        changed = (state.on_hand, state.reserved, state.backordered) != (
            before.on_hand,
            before.reserved,
            before.backordered,
        )
        placement = any(isinstance(e, StockReserved | StockShort) for e in events)  # reports itself
        assert len(levels) == int(changed and not placement), "one StockLevelChanged when figures changed"
        if levels:
            assert events[-1] == levels[0]
            assert (levels[0].on_hand, levels[0].reserved, levels[0].backordered) == (
                state.on_hand,
                state.reserved,
                state.backordered,
            )
        assert self.sku.rebuilt() == state

        if self.step % 10 == 0:  # replaying the log is quadratic over a run: every tenth step is enough
            self.check_published_queue()
        assert len(of_type(events, BackorderQueueChanged)) <= len(events) // 2 + 1
        newly_backordered = [e for e in of_type(events, StockShort) if e.disposition == "backordered"]
        if newly_backordered and state.settings.backorder_policy == "cap":
            assert state.backordered <= (state.settings.backorder_cap or 0)

        self.check_reorder_alert(events)
        self.check_every_line()

    def check_reorder_alert(self, events: list[EventPayload]) -> None:
        state = self.sku.state
        alerts = of_type(events, ReorderPointReached)
        assert len(alerts) <= 1
        if alerts:
            assert state.available <= state.settings.reorder_point
            assert not self.below_since_last_alert, "alerted twice without rising above the point"
            self.below_since_last_alert = True
        elif state.available > state.settings.reorder_point:
            self.below_since_last_alert = False
        elif events and not self.below_since_last_alert:
            pytest.fail(f"step {self.step}: at or below the reorder point without an alert")

    def check_every_line(self) -> None:
        state, log = self.sku.state, self.sku.log

        at_placement = Counter(
            {LineRef(e.order_id, e.line_id): e.quantity for e in of_type(log, StockReserved)}
        )
        shorts = of_type(log, StockShort)
        backordered = Counter(
            {
                LineRef(e.order_id, e.line_id): e.short_quantity
                for e in shorts
                if e.disposition == "backordered"
            }
        )
        rejected = Counter(
            {LineRef(e.order_id, e.line_id): e.short_quantity for e in shorts if e.disposition == "rejected"}
        )
        filled: Counter[LineRef] = Counter()
        for fill in of_type(log, BackorderFulfilled):
            filled[LineRef(fill.order_id, fill.line_id)] += fill.quantity
        shipped: Counter[LineRef] = Counter()
        for shipment in of_type(log, StockShipped):
            shipped[LineRef(shipment.order_id, shipment.line_id)] += shipment.quantity
        released: Counter[LineRef] = Counter()
        dropped: Counter[LineRef] = Counter()
        for release in of_type(log, StockReleased):
            released[LineRef(release.order_id, release.line_id)] += release.released_reserved
            dropped[LineRef(release.order_id, release.line_id)] += release.dropped_backordered

        for line, ordered in self.ordered.items():
            waiting = entry.remaining if (entry := state.queue.get(line)) else 0
            assert ordered == at_placement[line] + backordered[line] + rejected[line]
            assert backordered[line] == filled[line] + dropped[line] + waiting
            reserved_now = at_placement[line] + filled[line] - released[line] - shipped[line]
            assert state.reservations.get(line, 0) == reserved_now


@pytest.mark.parametrize("priority", [FIRST_COME_FIRST_SERVED, WEIGHTED], ids=["fcfs", "weighted"])
@pytest.mark.parametrize("seed", range(8))
def test_invariants_hold_after_every_step_of_a_random_run(seed: int, priority: PriorityPolicy) -> None:
    shopper = RandomShopper(seed, priority)
    shopper.play(250)
    shopper.check_published_queue()

    log = shopper.sku.log
    assert of_type(log, BackorderFulfilled), "the run should serve waiting lines"
    assert of_type(log, StockReleased), "the run should cancel"
    assert of_type(log, StockShipped), "the run should ship"
    assert of_type(log, StockCounted), "the run should count"
