"""What the HTTP API shows: one order (from its stream), and the open backorders (from the read models)."""

from datetime import date, datetime, timedelta
from decimal import Decimal

import asyncpg
from pydantic import BaseModel, Field

from backbone.contracts.events import CustomerTier, ShippingPreference
from backbone.eventstore import EventStore
from services.order.domain import (
    OrderStatus,
    ShipmentState,
    auto_cancel_deadline,
    initial_state,
    order_status,
    order_stream_id,
    shippable_now,
)
from services.order.history import summarize
from services.order.projections import LineTimes, track

_ONLY_TO_SUPPORT = "Null unless the caller's token has role support or staff (customer data)"


class CustomerView(BaseModel):
    customer_id: str
    email: str | None = Field(description=_ONLY_TO_SUPPORT)
    name: str | None = Field(description=_ONLY_TO_SUPPORT)
    tier: CustomerTier

    def redacted(self) -> "CustomerView":
        return self.model_copy(update={"email": None, "name": None})


_ANNOUNCED = "Sent by the warehouse (ShipmentDispatched); false: only inventory's part is known yet"
_CONFIRMED = (
    "Inventory shipped it (StockShipped for every announced line). False: announced, but inventory has "
    "not shipped it (not yet, or refused it): its units are not counted as shipped"
)


class LineShipmentView(BaseModel):
    shipment_id: str
    announced: int | None = Field(description="Units of the line the warehouse announced; null: not yet")
    shipped: int = Field(description="Units of the line inventory shipped in it (StockShipped)")
    confirmed: bool = Field(description=_CONFIRMED)
    shipped_at: datetime | None
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None


class ShippedLineView(BaseModel):
    line_id: str
    sku: str
    announced: int | None = Field(description="Units the warehouse announced; null: not announced")
    shipped: int = Field(description="Units inventory shipped (StockShipped)")


class ShipmentView(BaseModel):
    shipment_id: str
    announced: bool = Field(description=_ANNOUNCED)
    confirmed: bool = Field(description=_CONFIRMED)
    shipped_at: datetime | None = Field(description="As announced by the warehouse")
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    lines: list[ShippedLineView] = Field(description="The lines announced, then any only inventory named")


def shipment_view(shipment: ShipmentState, skus: dict[str, str]) -> ShipmentView:
    """`skus`: line_id -> SKU, for lines only inventory named (its StockShipped carries no SKU here)."""
    announcement = shipment.announcement
    announced = shipment.announced_lines
    line_ids = [*announced, *(line_id for line_id in shipment.shipped if line_id not in announced)]
    return ShipmentView(
        shipment_id=shipment.shipment_id,
        announced=announcement is not None,
        confirmed=shipment.confirmed,
        shipped_at=announcement.shipped_at if announcement else None,
        carrier=announcement.carrier if announcement else None,
        tracking_number=announcement.tracking_number if announcement else None,
        tracking_url=announcement.tracking_url if announcement else None,
        lines=[
            ShippedLineView(
                line_id=line_id,
                sku=announced[line_id].sku if line_id in announced else skus.get(line_id, ""),
                announced=announced[line_id].quantity if line_id in announced else None,
                shipped=shipment.shipped.get(line_id, 0),
            )
            for line_id in line_ids
        ],
    )


class LineView(BaseModel):
    line_id: str
    sku: str
    unit_price: Decimal
    ordered: int
    decided: bool = Field(description="Inventory has reserved, backordered or rejected every unit")
    reserved_at_placement: int
    backordered: int
    rejected: int
    rejection_reason: str | None
    filled: int = Field(description="Backordered units filled later from received or released stock")
    cancelled: int = Field(
        description="Units inventory confirmed cancelled: released from stock + dropped, not those switched"
    )
    substituted: int = Field(
        description="Units inventory confirmed switched to a substitute line (or, of a substitute line, "
        "given back because a fill reached the replaced line first); never refunded"
    )
    substitute_for: str | None = Field(
        description="Of a substitute line: the line whose waiting units it took over"
    )
    cancellation_pending: int = Field(description="Units whose cancellation inventory has not confirmed yet")
    waiting: int = Field(
        description="Backordered units still waiting: backordered - filled - dropped; of a substitute "
        "line, also the units inventory has not decided yet"
    )
    allocated: int = Field(
        description="Units in stock for the line, shipped ones included: reserved + filled - released"
    )
    shipped: int = Field(description="Units inventory shipped (StockShipped), in any shipment")
    shippable_now: int = Field(
        description="Allocated, unshipped units that may leave now (shipping preference, no pending cancel)"
    )
    closed: bool = Field(description="Decided, and nothing left to ship or wait for")
    shipments: list[LineShipmentView] = Field(description="Shipments that name the line, first known first")
    refunded: int
    refunded_amount: Decimal
    eta: date | None = Field(description="Expected date of the waiting units; null: no purchase order yet")
    previous_eta: date | None
    eta_known: bool = Field(description="Procurement has answered (eta may still be null)")
    po_id: str | None
    backordered_at: datetime | None
    first_eta: date | None = Field(description="The first ETA promised for the line")
    filled_at: datetime | None = Field(description="When the last waiting unit was filled")


class SubstitutionView(BaseModel):
    substitution_id: str
    replaced_line_id: str
    replaced_sku: str
    line_id: str = Field(description="The new line, of the substitute")
    sku: str
    quantity: int = Field(description="The waiting units switched")
    unit_price: Decimal
    substituted_at: datetime


class HistoryEntry(BaseModel):
    version: int
    event_id: str
    event_type: str
    occurred_at: datetime
    published: bool = Field(description="Published on the orders topic (else kept in the order's log)")
    summary: str


class OrderView(BaseModel):
    order_id: str
    version: int = Field(description="Version of the order's event stream")
    status: OrderStatus
    shop_id: str
    customer: CustomerView
    currency: str
    placed_at: datetime
    urgent: bool
    shipping_preference: ShippingPreference
    max_wait_days: int = Field(description="The order's own maximum wait, else the service default")
    auto_cancel_at: datetime | None = Field(description="When still-waiting units get cancelled")
    closed: bool = Field(
        description="Every line is shipped, cancelled or rejected: nothing to ship or wait for"
    )
    ordered_units: int
    waiting_units: int
    shipped_units: int = Field(description="Units inventory shipped, all lines together")
    shippable_now_units: int
    lines: list[LineView]
    shipments: list[ShipmentView] = Field(
        description="Every shipment known, from the warehouse's announcement or inventory's units, first "
        "known first"
    )
    substitutions: list[SubstitutionView] = Field(description="Switches to substitutes, first first")
    history: list[HistoryEntry]


async def order_view(
    conn: asyncpg.Connection, store: EventStore, order_id: str, default_max_wait_days: int
) -> OrderView | None:
    """The order as its own stream tells it; None if it was never placed (answers may precede it)."""
    stored = await store.read_stream(conn, order_stream_id(order_id))
    tracked = track(initial_state(order_id), [s.envelope for s in stored])
    state, placed = tracked.state, tracked.state.placement
    if placed is None:
        return None
    shippable = shippable_now(state)
    skus = {line.line_id: line.sku for line in state.lines.values()}
    shipments = [shipment_view(shipment, skus) for shipment in state.shipments.values()]
    by_line: dict[str, list[LineShipmentView]] = {}
    for shipment in shipments:
        for shipped in shipment.lines:
            by_line.setdefault(shipped.line_id, []).append(
                LineShipmentView(
                    shipment_id=shipment.shipment_id,
                    announced=shipped.announced,
                    shipped=shipped.shipped,
                    confirmed=shipment.confirmed,
                    shipped_at=shipment.shipped_at,
                    carrier=shipment.carrier,
                    tracking_number=shipment.tracking_number,
                    tracking_url=shipment.tracking_url,
                )
            )
    lines = []
    for line in state.lines.values():
        times = tracked.times.get(line.line_id, LineTimes())
        lines.append(
            LineView(
                line_id=line.line_id,
                sku=line.sku,
                unit_price=line.unit_price,
                ordered=line.ordered,
                decided=line.decided,
                reserved_at_placement=line.reserved_at_placement,
                backordered=line.backordered,
                rejected=line.rejected,
                rejection_reason=line.rejection_reason,
                filled=line.filled,
                cancelled=line.cancelled - line.substituted,
                substituted=line.substituted,
                substitute_for=line.substitute_for,
                cancellation_pending=line.cancellation_pending,
                waiting=line.waiting,
                allocated=line.allocated,
                shipped=line.shipped,
                shippable_now=shippable.get(line.line_id, 0),
                closed=line.closed,
                shipments=by_line.get(line.line_id, []),
                refunded=line.refunded,
                refunded_amount=line.refunded_amount,
                eta=line.eta,
                previous_eta=line.previous_eta,
                eta_known=line.eta_known,
                po_id=line.po_id,
                backordered_at=times.backordered_at,
                first_eta=times.first_eta,
                filled_at=times.filled_at,
            )
        )
    customer = placed.customer
    return OrderView(
        order_id=order_id,
        version=stored[-1].stream_version,
        status=order_status(state),
        shop_id=placed.shop_id,
        customer=CustomerView(
            customer_id=customer.customer_id, email=customer.email, name=customer.name, tier=customer.tier
        ),
        currency=placed.currency,
        placed_at=placed.placed_at,
        urgent=placed.urgent,
        shipping_preference=placed.shipping_preference,
        max_wait_days=placed.max_wait_days or default_max_wait_days,
        auto_cancel_at=auto_cancel_deadline(state, default_max_wait_days),
        closed=state.closed,
        ordered_units=sum(line.ordered for line in state.lines.values()),
        waiting_units=state.waiting,
        shipped_units=state.shipped,
        shippable_now_units=sum(shippable.values()),
        lines=lines,
        shipments=shipments,
        substitutions=[
            SubstitutionView(
                substitution_id=s.substitution_id,
                replaced_line_id=s.replaced.line_id,
                replaced_sku=s.replaced.sku,
                line_id=s.line.line_id,
                sku=s.line.sku,
                quantity=s.line.quantity,
                unit_price=s.line.unit_price,
                substituted_at=s.substituted_at,
            )
            for s in state.substitutions.values()
        ],
        history=[
            HistoryEntry(
                version=s.stream_version,
                event_id=str(s.envelope.event_id),
                event_type=s.envelope.event_type,
                occurred_at=s.envelope.occurred_at,
                published=s.envelope.payload.topic is not None,
                summary=summarize(s.envelope.payload),
            )
            for s in stored
        ],
    )


class BackorderView(BaseModel):
    order_id: str
    line_id: str
    sku: str
    customer_id: str
    status: OrderStatus
    placed_at: datetime
    age_days: float = Field(description="Days since the order was placed: how long the customer has waited")
    ordered: int
    backordered: int
    filled: int
    waiting: int
    cancellation_pending: int = Field(description="Of the waiting units, being cancelled (not yet confirmed)")
    eta: date | None
    previous_eta: date | None
    po_id: str | None
    auto_cancel_at: datetime


_OPEN_BACKORDERS = """
SELECT l.order_id, l.line_id, l.sku, o.customer_id, o.status, o.placed_at, o.max_wait_days,
       l.ordered, l.backordered, l.filled, l.waiting,
       least(l.cancellation_pending, l.waiting) AS cancellation_pending, l.eta, l.previous_eta, l.po_id
FROM order_lines l JOIN orders o ON o.order_id = l.order_id
WHERE l.waiting > 0
  AND ($1::text IS NULL OR l.sku = $1)
  AND ($2::text IS NULL OR o.customer_id = $2)
  AND ($3::float8 IS NULL OR o.placed_at <= $5::timestamptz - $3 * interval '1 day')
  AND ($4::float8 IS NULL OR o.placed_at >= $5::timestamptz - $4 * interval '1 day')
ORDER BY o.placed_at, l.order_id, l.line_id
LIMIT $6
"""


async def open_backorders(
    conn: asyncpg.Connection,
    *,
    now: datetime,
    default_max_wait_days: int,
    sku: str | None = None,
    customer_id: str | None = None,
    min_age_days: float | None = None,
    max_age_days: float | None = None,
    limit: int = 100,
) -> list[BackorderView]:
    """Lines with units still waiting, oldest order first."""
    rows = await conn.fetch(_OPEN_BACKORDERS, sku, customer_id, min_age_days, max_age_days, now, limit)
    views = []
    for r in rows:
        row = dict(r)
        max_wait = row.pop("max_wait_days") or default_max_wait_days
        views.append(
            BackorderView(
                **row,
                age_days=round((now - r["placed_at"]).total_seconds() / 86400, 3),
                auto_cancel_at=r["placed_at"] + timedelta(days=max_wait),
            )
        )
    return views
