"""A procurement SKU driven through `decide`, keeping its stream the way the handler layer would, with
inventory's side of the backorder queue played by `InventoryQueue`."""

import bisect
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from backbone.contracts.envelope import EventPayload
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderQueueChanged,
    GoodsReceived,
    PurchaseOrderIssued,
    QueueChange,
)
from services.procurement.domain import (
    Incoming,
    Origin,
    ProcurementState,
    SetSupplierTerms,
    decide,
    fold,
    initial_state,
)
from services.procurement.events import SupplierRole, SupplierTerms
from services.procurement.planning import DEFAULT_POLICY, PurchasePolicy

SKU = "SKU-1"
DAY0 = date(2025, 3, 3)


OPENING = datetime(DAY0.year, DAY0.month, DAY0.day, 9, tzinfo=UTC)


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def terms(
    supplier_id: str = "S1",
    *,
    lead_time_days: int = 10,
    moq: int = 1,
    pack: int = 1,
    unit_cost: str = "5.00",
    currency: str = "EUR",
    role: SupplierRole = "primary",
) -> SupplierTerms:
    return SupplierTerms(
        supplier_id=supplier_id,
        lead_time_days=lead_time_days,
        minimum_order_quantity=moq,
        pack_size=pack,
        unit_cost=Decimal(unit_cost),
        currency=currency,
        role=role,
    )


def catalogue(*suppliers: SupplierTerms) -> SetSupplierTerms:
    return SetSupplierTerms(sku=SKU, suppliers=list(suppliers), actor="admin")


@dataclass(frozen=True)
class InventoryLine:
    order_id: str
    quantity: int
    sequence: int
    priority_score: Decimal
    placed_at: datetime

    @property
    def rank(self) -> tuple[Decimal, datetime, int]:
        return (-self.priority_score, self.placed_at, self.sequence)


@dataclass
class InventoryQueue:
    """Inventory's waiting queue of one SKU (each order has one line, "1"), and the one-line
    BackorderQueueChanged events it publishes as it changes. Lines are placed a minute apart."""

    sku: str = SKU
    lines: list[InventoryLine] = field(default_factory=list)  # in allocation order
    sequences: int = 0
    units: int = 0

    def join(self, order_id: str, quantity: int, priority_score: str = "0") -> BackorderQueueChanged:
        self.sequences += 1
        placed_at = OPENING + timedelta(minutes=self.sequences)
        line = InventoryLine(order_id, quantity, self.sequences, Decimal(priority_score), placed_at)
        position = bisect.bisect_left(self.lines, line.rank, key=lambda w: w.rank)
        self.lines.insert(position, line)
        self.units += quantity
        return self._changed(line, "joined", quantity, position + 1)

    def reduce(self, order_id: str, remaining: int) -> BackorderQueueChanged:
        index = next(i for i, w in enumerate(self.lines) if w.order_id == order_id)
        line = self.lines[index]
        if remaining == 0:
            del self.lines[index]
        else:
            self.lines[index] = replace(line, quantity=remaining)
        self.units -= line.quantity - remaining
        return self._changed(line, "left" if remaining == 0 else "reduced", remaining, index + 1)

    def becomes(self, *lines: tuple[str, int]) -> list[BackorderQueueChanged]:
        """The changes that turn the queue into `lines` (order_id, quantity): lines not in it leave,
        others are reduced, new ones join at the end in the order given (first come, first served)."""
        wanted = dict(lines)
        changes = [self.reduce(w.order_id, 0) for w in list(self.lines) if w.order_id not in wanted]
        for w in list(self.lines):
            if wanted[w.order_id] != w.quantity:
                changes.append(self.reduce(w.order_id, wanted[w.order_id]))
        known = {w.order_id for w in self.lines}
        changes.extend(self.join(o, q) for o, q in lines if o not in known)
        return changes

    def _changed(
        self, line: InventoryLine, change: QueueChange, remaining: int, position: int
    ) -> BackorderQueueChanged:
        return BackorderQueueChanged(
            sku=self.sku,
            order_id=line.order_id,
            line_id="1",
            change=change,
            position=position,
            remaining=remaining,
            priority_score=line.priority_score,
            placed_at=line.placed_at,
            sequence=line.sequence,
            waiting_lines=len(self.lines),
            waiting_units=self.units,
        )


def joined(order_id: str, quantity: int) -> BackorderQueueChanged:
    """A line joining an empty queue."""
    return InventoryQueue().join(order_id, quantity)


def receipt(receipt_id: str, po_id: str | None, quantity: int, on: date) -> GoodsReceived:
    received_at = datetime(on.year, on.month, on.day, 9, tzinfo=UTC)
    return GoodsReceived(
        receipt_id=receipt_id, po_id=po_id, sku=SKU, quantity=quantity, received_at=received_at
    )


@dataclass
class Scenario:
    state: ProcurementState = field(default_factory=lambda: initial_state(SKU))
    stream: list[EventPayload] = field(default_factory=list)
    today: date = DAY0
    policy: PurchasePolicy = DEFAULT_POLICY
    inventory: InventoryQueue = field(default_factory=InventoryQueue)

    def send(
        self, incoming: Incoming, *, on: date | None = None, origin: Origin | None = None
    ) -> list[EventPayload]:
        """Decide, then append and fold, as the handler does in one transaction."""
        if on is not None:
            self.today = on
        events = decide(self.state, incoming, today=self.today, policy=self.policy, origin=origin)
        self.state = fold(self.state, events)
        self.stream.extend(events)
        return events

    def queue(self, *lines: tuple[str, int], on: date | None = None) -> list[EventPayload]:
        """Inventory's queue becomes `lines` (see InventoryQueue.becomes): the events of every change."""
        return [e for change in self.inventory.becomes(*lines) for e in self.send(change, on=on)]


def etas(events: list[EventPayload]) -> dict[str, BackorderEtaUpdated]:
    """The ETA updates among `events`, by order id."""
    return {e.order_id: e for e in events if isinstance(e, BackorderEtaUpdated)}


def purchases(events: list[EventPayload]) -> list[PurchaseOrderIssued]:
    return [e for e in events if isinstance(e, PurchaseOrderIssued)]
