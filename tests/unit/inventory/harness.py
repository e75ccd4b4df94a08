"""A SKU under test: builds commands with sensible defaults, applies them and keeps the event log."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from backbone.contracts.envelope import EventPayload
from backbone.contracts.events import BackorderQueueChanged, CustomerTier
from services.inventory.domain import (
    AdjustStock,
    BackorderPolicy,
    CancelLine,
    Command,
    CountStock,
    ReceiveGoods,
    RecordSourcing,
    ReserveLine,
    SetPolicy,
    ShipLine,
    SkuState,
    UnknownSkuPolicy,
    execute,
    initial_state,
    rebuild,
)
from services.inventory.priority import FIRST_COME_FIRST_SERVED, PriorityPolicy

SKU = "JACKET-M"
OPENING = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # the promotion starts

E = TypeVar("E", bound=EventPayload)


def at(minutes: int) -> datetime:
    return OPENING + timedelta(minutes=minutes)


def of_type(events: list[EventPayload], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def published_queue(log: list[EventPayload]) -> list[tuple[str, int]]:
    """The queue as a consumer builds it from BackorderQueueChanged alone: (order_id, units waiting) in
    allocation order. Checks every event's position and totals against the view on the way."""
    view: list[tuple[str, str, int]] = []
    for e in of_type(log, BackorderQueueChanged):
        key = (e.order_id, e.line_id)
        if e.change == "joined":
            assert key not in [(o, line) for o, line, _ in view]
            view.insert(e.position - 1, (*key, e.remaining))
        else:
            assert view[e.position - 1][:2] == key, f"{key} is not at position {e.position}"
            if e.change == "left":
                del view[e.position - 1]
            else:
                view[e.position - 1] = (*key, e.remaining)
        assert (e.waiting_lines, e.waiting_units) == (len(view), sum(q for _, _, q in view))
    return [(order_id, units) for order_id, _, units in view]


class SkuHarness:
    def __init__(
        self,
        priority: PriorityPolicy = FIRST_COME_FIRST_SERVED,
        sku: str = SKU,
        unknown_sku: UnknownSkuPolicy = "backorder",  # most tests are about the queue, not about new SKUs
    ) -> None:
        self.priority = priority
        self.unknown_sku: UnknownSkuPolicy = unknown_sku
        self.state: SkuState = initial_state(sku)
        self.log: list[EventPayload] = []
        self._receipts = 0

    @property
    def sku(self) -> str:
        return self.state.sku

    def run(self, command: Command) -> list[EventPayload]:
        self.state, events = execute(self.state, command, self.priority, self.unknown_sku)
        self.log.extend(events)
        return events

    def reserve(
        self,
        order_id: str,
        quantity: int,
        *,
        line_id: str = "1",
        minute: int = 0,
        tier: CustomerTier = "standard",
        urgent: bool = False,
        unit_price: Decimal = Decimal("50.00"),
    ) -> list[EventPayload]:
        return self.run(
            ReserveLine(
                sku=self.sku,
                order_id=order_id,
                line_id=line_id,
                quantity=quantity,
                placed_at=at(minute),
                tier=tier,
                urgent=urgent,
                line_value=quantity * unit_price,
            )
        )

    def receive(self, quantity: int, receipt_id: str | None = None) -> list[EventPayload]:
        self._receipts += 1
        receipt_id = receipt_id or f"R-{self._receipts}"
        return self.run(ReceiveGoods(sku=self.sku, receipt_id=receipt_id, quantity=quantity))

    def cancel(
        self,
        order_id: str,
        quantity: int,
        *,
        line_id: str = "1",
        cancellation_id: str = "cancel-1",
        only_waiting: bool = False,
    ) -> list[EventPayload]:
        return self.run(
            CancelLine(
                sku=self.sku,
                order_id=order_id,
                line_id=line_id,
                quantity=quantity,
                cancellation_id=cancellation_id,
                only_waiting=only_waiting,
                reason="customer_request",
            )
        )

    def ship(
        self, order_id: str, quantity: int, *, line_id: str = "1", shipment_id: str = "S-1"
    ) -> list[EventPayload]:
        return self.run(
            ShipLine(
                sku=self.sku, shipment_id=shipment_id, order_id=order_id, line_id=line_id, quantity=quantity
            )
        )

    def count(
        self, counted: int, count_id: str = "count-1", reason: str = "cycle count"
    ) -> list[EventPayload]:
        return self.run(
            CountStock(
                sku=self.sku,
                count_id=count_id,
                counted=counted,
                reason=reason,
                actor="clerk",
                counted_at=at(0),
            )
        )

    def record_sourcing(self, sourced: bool) -> list[EventPayload]:
        return self.run(RecordSourcing(sku=self.sku, sourced=sourced))

    def adjust(
        self, delta: int, reason: str = "stock count", adjustment_id: str = "adj-1"
    ) -> list[EventPayload]:
        return self.run(
            AdjustStock(sku=self.sku, delta=delta, reason=reason, actor="clerk", adjustment_id=adjustment_id)
        )

    def set_policy(
        self,
        policy: BackorderPolicy,
        *,
        cap: int | None = None,
        reorder_point: int = 0,
        safety_stock: int = 0,
    ) -> list[EventPayload]:
        return self.run(
            SetPolicy(
                sku=self.sku,
                backorder_policy=policy,
                backorder_cap=cap,
                reorder_point=reorder_point,
                safety_stock=safety_stock,
                actor="buyer",
            )
        )

    def rebuilt(self) -> SkuState:
        """The state rebuilt from the log alone, as a projection rebuild would."""
        return rebuild(self.sku, self.log)
