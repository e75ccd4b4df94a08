"""A procurement SKU driven through `decide`, keeping its stream the way the handler layer would."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from backbone.contracts.envelope import EventPayload
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderQueueChanged,
    BackorderQueueEntry,
    GoodsReceived,
    PurchaseOrderIssued,
)
from services.procurement.domain import (
    Incoming,
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


def queue(*lines: tuple[str, int]) -> BackorderQueueChanged:
    """Lines as (order_id, quantity); each order has one line, "1"."""
    entries = [BackorderQueueEntry(order_id=o, line_id="1", quantity=q) for o, q in lines]
    return BackorderQueueChanged(sku=SKU, entries=entries)


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

    def send(self, incoming: Incoming, *, on: date | None = None) -> list[EventPayload]:
        """Decide, then append and fold, as the handler does in one transaction."""
        if on is not None:
            self.today = on
        events = decide(self.state, incoming, today=self.today, policy=self.policy)
        self.state = fold(self.state, events)
        self.stream.extend(events)
        return events


def etas(events: list[EventPayload]) -> dict[str, BackorderEtaUpdated]:
    """The ETA updates among `events`, by order id."""
    return {e.order_id: e for e in events if isinstance(e, BackorderEtaUpdated)}


def purchases(events: list[EventPayload]) -> list[PurchaseOrderIssued]:
    return [e for e in events if isinstance(e, PurchaseOrderIssued)]
