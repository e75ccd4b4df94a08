"""What the board shows, and how it is put together from the services' answers (pure: no I/O here).

Each section is None when its source did not answer this round; the page then keeps showing what it
had, marked stale, and the banner names the source (`sources`).
"""

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RateBucket = Literal["hour", "day"]
BUCKETS: dict[str, int] = {"hour": 24, "day": 30}  # the board's two views: a day by hours, a month by days


class _Read(BaseModel):
    """A service's answer, of which the board reads a few fields (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore")


# --- the services' answers -----------------------------------------------------------------------------


class WaitingSku(_Read):
    sku: str
    waiting_units: int
    waiting_lines: int
    on_hand: int
    reserved: int
    available: int
    sourced: bool


class PurchaseOrder(_Read):
    po_id: str
    supplier_id: str
    quantity: int
    outstanding: int
    received_quantity: int
    confirmed_quantity: int | None
    expected_arrival: date
    due_date: date | None
    expected_complete: date | None
    status: str


class LineEta(_Read):
    order_id: str
    line_id: str
    position: int
    quantity: int
    eta: date | None
    po_id: str | None
    reason: str


class ProcurementSku(_Read):
    sku: str
    on_order: int
    open_need: int
    sourced: bool
    open_purchase_orders: list[PurchaseOrder]
    backorders: list[LineEta]


class QueueEntry(_Read):
    position: int
    order_id: str
    line_id: str
    quantity: int


class Stock(_Read):
    sku: str
    on_hand: int
    reserved: int
    available: int
    backordered: int
    waiting_lines: int
    sourced: bool
    queue: list[QueueEntry]


class Backorder(_Read):
    order_id: str
    line_id: str
    placed_at: datetime
    age_days: float
    eta: date | None = Field(description="As the order service last heard it from procurement")
    po_id: str | None


class RatePoint(_Read):
    start: datetime
    end: datetime
    lines: int
    ordered_units: int
    reserved_at_placement_units: int
    backordered_units: int
    backorder_rate_percent: float | None
    fill_rate_percent: float | None


class Rates(_Read):
    bucket: RateBucket
    sku: str | None
    points: list[RatePoint]


class AgeBucket(_Read):
    bucket: str
    lower_hours: float
    upper_hours: float | None
    lines: int
    waiting_units: int


class Ageing(_Read):
    sku: str | None
    lines: int
    waiting_units: int
    oldest_placed_at: datetime | None
    buckets: list[AgeBucket]


class Failure(_Read):
    """A notification the notifier gave up on (no customer data: the board does not need any)."""

    notification_id: str
    kind: str
    order_id: str | None
    sku: str | None
    channel: str | None
    attempts: int
    last_error: str | None
    updated_at: datetime


class UnsourcedSku(_Read):
    """A SKU whose backorders wait with no supplier to buy from (so without a date)."""

    sku: str
    waiting_lines: int
    waiting_units: int


class DeadLetters(_Read):
    topic: str = Field(description="The source topic")
    dead_letter_topic: str
    exists: bool = Field(description="False: the dead-letter topic was never created")
    partitions: int
    messages: int = Field(description="End offset - beginning offset, over its partitions")


# --- the board -----------------------------------------------------------------------------------------


class SourceState(BaseModel):
    ok: bool
    detail: str | None = Field(description="Why the source counts as down this round")


class SkuRow(BaseModel):
    sku: str
    waiting_units: int
    waiting_lines: int
    on_hand: int
    reserved: int
    available: int
    sourced: bool
    on_order: int | None = Field(description="Units open POs still have to deliver; null: procurement down")
    open_purchase_orders: int | None
    next_eta: date | None = Field(description="ETA of the first line in the queue")


class QueueLine(BaseModel):
    position: int
    order_id: str
    line_id: str
    quantity: int
    eta: date | None
    po_id: str | None
    eta_reason: str | None
    waited_days: float | None = Field(description="Since the order was placed; null: not known yet")


class SkuDetail(BaseModel):
    sku: str
    waiting_units: int | None
    waiting_lines: int | None
    on_hand: int | None
    available: int | None
    on_order: int | None
    queue: list[QueueLine] | None = Field(description="The head of the queue in allocation order")
    purchase_orders: list[PurchaseOrder] | None
    rates: Rates | None
    ageing: Ageing | None


class Failures(BaseModel):
    count: int = Field(description="Failed notifications found (at most the board's limit)")
    more: bool = Field(description="There may be more than `count`")
    recent: list[Failure] = Field(description="The latest ones")


class Totals(BaseModel):
    waiting_units: int | None
    waiting_lines: int | None
    oldest_placed_at: datetime | None
    backorder_rate_percent: float | None = Field(description="Over the rates' whole window")
    fill_rate_percent: float | None
    failed_notifications: int | None
    dead_letters: int | None
    unsourced_skus: int | None = Field(
        description="SKUs waiting with no supplier (at most the board's limit)"
    )
    unsourced_units: int | None


class Board(BaseModel):
    generated_at: datetime
    refresh_seconds: float
    topic_prefix: str
    top: int
    bucket: RateBucket
    sources: dict[str, SourceState]
    skus: list[SkuRow] | None
    selected: SkuDetail | None
    rates: Rates | None
    ageing: Ageing | None
    failures: Failures | None
    dead_letters: list[DeadLetters] | None
    unsourced: list[UnsourcedSku] | None
    totals: Totals


def percent(part: int, whole: int) -> float | None:
    return round(part * 100 / whole, 2) if whole else None


def sku_rows(
    waiting: Sequence[WaitingSku], procurement: dict[str, ProcurementSku | None] | None
) -> list[SkuRow]:
    """`procurement`: per SKU its view (None: procurement knows nothing of it); None: procurement down."""
    rows = []
    for w in waiting:
        known = procurement is not None and w.sku in procurement
        view = procurement.get(w.sku) if procurement is not None else None
        rows.append(
            SkuRow(
                **w.model_dump(),
                on_order=(view.on_order if view else 0) if known else None,
                open_purchase_orders=(len(view.open_purchase_orders) if view else 0) if known else None,
                next_eta=view.backorders[0].eta if view and view.backorders else None,
            )
        )
    return rows


def queue_lines(
    stock: Stock | None, procurement: ProcurementSku | None, backorders: Sequence[Backorder] | None
) -> list[QueueLine] | None:
    """The head of the SKU's queue: inventory's order and quantities (procurement's copy when inventory is
    down), procurement's ETAs (else those the order service last heard of), the order service's waiting
    times."""
    etas = {(e.order_id, e.line_id): e for e in procurement.backorders} if procurement else {}
    told = {(b.order_id, b.line_id): b for b in backorders or ()}
    entries: Iterable[QueueEntry | LineEta]
    if stock is not None:
        entries = stock.queue
    elif procurement is not None:
        entries = procurement.backorders
    else:
        return None
    lines = []
    for entry in entries:
        key = (entry.order_id, entry.line_id)
        planned, known = etas.get(key), told.get(key)
        lines.append(
            QueueLine(
                position=entry.position,
                order_id=entry.order_id,
                line_id=entry.line_id,
                quantity=entry.quantity,
                eta=planned.eta if planned else known.eta if known else None,
                po_id=planned.po_id if planned else known.po_id if known else None,
                eta_reason=planned.reason if planned else None,
                waited_days=known.age_days if known else None,
            )
        )
    return lines


def sku_detail(
    sku: str,
    stock: Stock | None,
    procurement: ProcurementSku | None,
    backorders: Sequence[Backorder] | None,
    rates: Rates | None,
    ageing: Ageing | None,
    *,
    procurement_answered: bool,
) -> SkuDetail:
    """`stock` None: inventory knows nothing of the SKU or is down; `procurement` None with
    `procurement_answered`: procurement knows nothing of it (no POs), else procurement is down."""
    return SkuDetail(
        sku=sku,
        waiting_units=stock.backordered if stock else None,
        waiting_lines=stock.waiting_lines if stock else None,
        on_hand=stock.on_hand if stock else None,
        available=stock.available if stock else None,
        on_order=(procurement.on_order if procurement else 0) if procurement_answered else None,
        queue=queue_lines(stock, procurement, backorders),
        purchase_orders=(procurement.open_purchase_orders if procurement else [])
        if procurement_answered
        else None,
        rates=rates,
        ageing=ageing,
    )


def failures(found: Sequence[Failure], limit: int, shown: int) -> Failures:
    """`found`: the notifier's latest failed deliveries (at most `limit`); the latest `shown` of them."""
    latest = sorted(found, key=lambda f: (f.updated_at, f.notification_id), reverse=True)
    return Failures(count=len(found), more=len(found) >= limit, recent=latest[:shown])


def totals(
    rates: Rates | None,
    ageing: Ageing | None,
    found_failures: Failures | None,
    dead_letters: Sequence[DeadLetters] | None,
    unsourced: Sequence[UnsourcedSku] | None,
) -> Totals:
    ordered = sum(p.ordered_units for p in rates.points) if rates else 0
    return Totals(
        waiting_units=ageing.waiting_units if ageing else None,
        waiting_lines=ageing.lines if ageing else None,
        oldest_placed_at=ageing.oldest_placed_at if ageing else None,
        backorder_rate_percent=percent(sum(p.backordered_units for p in rates.points), ordered)
        if rates
        else None,
        fill_rate_percent=percent(sum(p.reserved_at_placement_units for p in rates.points), ordered)
        if rates
        else None,
        failed_notifications=found_failures.count if found_failures else None,
        dead_letters=sum(d.messages for d in dead_letters) if dead_letters is not None else None,
        unsourced_skus=len(unsourced) if unsourced is not None else None,
        unsourced_units=sum(u.waiting_units for u in unsourced) if unsourced is not None else None,
    )
