"""HTTP API of procurement: the supplier catalogue (audited admin command) and the read models, among
them the report of SKUs whose backorders wait with no supplier to buy from (GET /reports/unsourced) and
the suppliers' reliability (GET /reports/suppliers).

The admin command runs the domain like the consumer does (lock, load, decide, append, project) in one
transaction, retried a few times on ConcurrencyError. Setting a catalogue re-plans the SKU at once: a
need nothing covered yet is bought for, and the lines it serves learn their ETA. Invalid input -> 422
with the reason, and nothing is written.
"""

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal, Self, TypeVar

import asyncpg
from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from backbone.aggregate import StreamRepository
from backbone.auth import ReadsViews, Staff, WithoutActor
from backbone.contracts.types import Currency, Identifier, Money, Quantity
from backbone.decider import Decided, Input
from backbone.eventstore import ConcurrencyError
from services.procurement import projections
from services.procurement.domain import Incoming, ProcurementConflict, ProcurementState, SetSupplierTerms
from services.procurement.events import SupplierRole, SupplierTerms, check_catalogue
from services.procurement.handlers import Clock, apply
from services.procurement.planning import PurchasePolicy
from services.procurement.reliability import EtaAccuracy, LatenessHistory

ATTEMPTS = 5
View = TypeVar("View")
_ID_PATTERN = r"^\S(?:.*\S)?$"
SkuPath = Annotated[str, Path(min_length=1, max_length=128, pattern=_ID_PATTERN)]
PoIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=_ID_PATTERN)]
PoStatus = Literal["open", "closed", "cancelled"]
# Who may do what (README "Roles"): the catalogue is staff's; the audit actor is the token's subject.


# --- request bodies ------------------------------------------------------------------------------------


class SupplierTermsBody(BaseModel):
    """One supplier's offer for the SKU. Whole numbers must be JSON integers ("5" and 5.0 are refused);
    unit_cost is a decimal string or number with at most two decimals."""

    model_config = ConfigDict(extra="forbid")

    supplier_id: Identifier
    lead_time_days: int = Field(
        strict=True, ge=0, le=365, description="Days from issuing a PO to its arrival"
    )
    minimum_order_quantity: Quantity = Field(default=1, strict=True, description="Smallest PO quantity")
    pack_size: Quantity = Field(default=1, strict=True, description="PO quantities are whole multiples of it")
    unit_cost: Money
    currency: Currency = Field(description="ISO 4217 code, e.g. EUR")
    role: SupplierRole = Field(description="primary: the default choice; alternate: chosen when sooner")

    def terms(self) -> SupplierTerms:
        return SupplierTerms(**self.model_dump())


class CatalogueRequest(WithoutActor):
    """Replaces the SKU's whole supplier catalogue; an empty list stops purchasing it. Who makes the
    change (audited) is the token's subject."""

    model_config = ConfigDict(extra="forbid")

    suppliers: list[SupplierTermsBody] = Field(max_length=100)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_catalogue([s.terms() for s in self.suppliers])
        primary = next((s for s in self.suppliers if s.role == "primary"), None)
        for s in self.suppliers:
            if primary is not None and s.currency != primary.currency:
                # choose_supplier cannot compare costs across currencies: such an alternate is dead weight.
                raise ValueError(
                    f"alternate supplier {s.supplier_id!r} quotes in {s.currency} but the primary"
                    f" {primary.supplier_id!r} in {primary.currency}: without a common currency it"
                    " could never be chosen"
                )
        return self


# --- views ---------------------------------------------------------------------------------------------


class SupplierTermsView(BaseModel):
    supplier_id: str
    role: SupplierRole
    lead_time_days: int
    minimum_order_quantity: int
    pack_size: int
    unit_cost: Decimal
    currency: str


class CatalogueView(BaseModel):
    sku: str
    suppliers: list[SupplierTermsView] = Field(description="As given; empty: the SKU is not purchased")
    actor: str
    updated_at: datetime


class CatalogueChange(CatalogueView):
    events: list[str] = Field(description="Types of the events the change caused, in order")


class ShipmentView(BaseModel):
    asn_id: str
    quantity: int = Field(description="Units of the notice not received yet")
    expected_date: date


class PurchaseOrderView(BaseModel):
    po_id: str
    sku: str
    sequence: int = Field(description="The SKU's n-th purchase order")
    supplier_id: str
    revision: int
    quantity: int = Field(description="Ordered, latest revision")
    unit_cost: Decimal
    currency: str
    expected_arrival: date = Field(description="Our estimate when issued: issue day + lead time")
    confirmed_quantity: int | None = Field(description="Null until the supplier acknowledges")
    confirmed_date: date | None
    shipments: list[ShipmentView]
    received_quantity: int
    outstanding: int = Field(description="Units still to come")
    expected_complete: date | None = Field(description="When the last outstanding unit is expected")
    due_date: date | None = Field(
        description="When the first outstanding units are expected; once that passed, the PO is overdue"
        " and its units are expected OVERDUE_GRACE_DAYS later (again each time the date passes)"
    )
    status: PoStatus = Field(description="closed: delivered or refused; cancelled: no longer needed")
    issued_at: datetime
    updated_at: datetime


class LineEtaView(BaseModel):
    order_id: str
    line_id: str
    sku: str
    position: int = Field(description="Place in the SKU's backorder queue; 1 is served first")
    quantity: int = Field(description="Units still waiting")
    eta: date | None = Field(
        description="Null: no purchase order covers the line yet, or no supplier is known"
    )
    po_id: str | None
    reason: str
    updated_at: datetime = Field(description="When this ETA was announced")


class SkuView(BaseModel):
    sku: str
    version: int
    free_stock: int = Field(description="On hand minus reserved, as procurement last learned it")
    backordered: int
    reorder_point: int
    safety_stock: int
    on_order: int = Field(description="Units open purchase orders still have to deliver")
    open_need: int = Field(description="Units needed that nothing covers (no supplier to buy from)")
    waiting_lines: int
    sourced: bool = Field(description="Whether a supplier is known to buy the SKU from")
    updated_at: datetime
    open_purchase_orders: list[PurchaseOrderView]
    backorders: list[LineEtaView] = Field(
        description="A page of the waiting lines in queue order (`lines_offset`, `lines_limit`), with ETAs"
    )


class UnsourcedSkuView(BaseModel):
    sku: str
    waiting_lines: int = Field(description="Backordered lines waiting for the SKU")
    waiting_units: int = Field(description="Units they wait for")
    updated_at: datetime = Field(description="When procurement last changed its view of the SKU")


class SupplierReliabilityView(BaseModel):
    supplier_id: str
    receipts: int = Field(description="Receipts against our purchase orders")
    on_time_rate: float | None = Field(
        description="Share of receipts on or before the supplier's confirmed date (our planned one if it"
        " never confirmed), 0..1"
    )
    days_late_p50: int = Field(description="Median days late (negative: early), clamped to [-30, 120]")
    days_late_p80: int = Field(description="80th percentile of days late: what an ETA would add to its dates")
    planned_kept_rate: float | None = Field(
        description="Share of receipts on or before the date we planned with (issue day + quoted lead time)"
    )
    planned_mean_abs_error_days: float | None = Field(description="Mean |receipt day - planned date|")
    updated_at: datetime


# --- queries -------------------------------------------------------------------------------------------


async def reliability_views(conn: asyncpg.Connection) -> list[SupplierReliabilityView]:
    """One row per supplier; its lateness histogram is at most 151 rows (reliability.LatenessHistory)."""
    histograms: dict[str, list[tuple[int, int]]] = {}
    for r in await conn.fetch("SELECT * FROM supplier_lateness ORDER BY supplier_id, days_late"):
        histograms.setdefault(r["supplier_id"], []).append((r["days_late"], r["receipts"]))
    views = []
    for r in await conn.fetch("SELECT * FROM supplier_eta_accuracy ORDER BY supplier_id"):
        history = LatenessHistory(tuple(histograms.get(r["supplier_id"], ())))
        planned = EtaAccuracy(r["receipts"], r["kept"], r["abs_error_days_total"])
        views.append(
            SupplierReliabilityView(
                supplier_id=r["supplier_id"],
                receipts=history.count,
                on_time_rate=history.on_time_rate,
                days_late_p50=history.percentile(50),
                days_late_p80=history.percentile(80),
                planned_kept_rate=planned.kept_rate,
                planned_mean_abs_error_days=planned.mean_abs_error_days,
                updated_at=r["updated_at"],
            )
        )
    return views


_PO_COLUMNS = (
    "po_id, sku, sequence, supplier_id, revision, quantity, unit_cost, currency, expected_arrival,"
    " confirmed_quantity, confirmed_date, shipments, received_quantity, outstanding, expected_complete,"
    " due_date, status, issued_at, updated_at"
)
_LINE_COLUMNS = "order_id, line_id, sku, position, quantity, eta, po_id, reason, updated_at"
# A line's place in its SKU's queue is not stored (projections.py): it is its number in rank order.
_POSITION = (
    "row_number() OVER (PARTITION BY sku"
    " ORDER BY priority_score DESC, placed_at, sequence, order_id, line_id) AS position"
)
# A page of the queue: the index on the rank finds it; positions are numbered from the page's offset.
_SKU_LINES = f"""
SELECT {_LINE_COLUMNS.replace("position", "position + $2 AS position")} FROM (
    SELECT *, {_POSITION} FROM (
        SELECT * FROM line_etas WHERE sku = $1
        ORDER BY priority_score DESC, placed_at, sequence, order_id, line_id OFFSET $2 LIMIT $3
    ) AS page
) AS ranked
ORDER BY position
"""
_ORDER_LINES = f"""
SELECT {_LINE_COLUMNS} FROM (
    SELECT *, {_POSITION} FROM line_etas
    WHERE sku IN (SELECT sku FROM line_etas WHERE order_id = $1)
) AS ranked
WHERE order_id = $1
ORDER BY line_id, sku
"""


def _purchase_order(row: asyncpg.Record) -> PurchaseOrderView:
    return PurchaseOrderView(**{**dict(row), "shipments": json.loads(row["shipments"])})


async def catalogue_view(conn: asyncpg.Connection, sku: str) -> CatalogueView | None:
    head = await conn.fetchrow("SELECT actor, updated_at FROM supplier_catalogues WHERE sku = $1", sku)
    if head is None:
        return None
    terms = await conn.fetch(
        "SELECT supplier_id, role, lead_time_days, minimum_order_quantity, pack_size, unit_cost, currency"
        " FROM supplier_terms WHERE sku = $1 ORDER BY position",
        sku,
    )
    return CatalogueView(sku=sku, suppliers=[SupplierTermsView(**dict(t)) for t in terms], **dict(head))


async def sku_view(
    conn: asyncpg.Connection, sku: str, lines_offset: int = 0, lines_limit: int = 100
) -> SkuView | None:
    row = await conn.fetchrow("SELECT * FROM procurement_skus WHERE sku = $1", sku)
    if row is None:
        return None
    orders = await conn.fetch(
        f"SELECT {_PO_COLUMNS} FROM purchase_orders WHERE sku = $1 AND status = 'open' ORDER BY sequence",
        sku,
    )
    lines = await conn.fetch(_SKU_LINES, sku, lines_offset, lines_limit) if lines_limit else []
    return SkuView(
        **dict(row),
        open_purchase_orders=[_purchase_order(r) for r in orders],
        backorders=[LineEtaView(**dict(r)) for r in lines],
    )


async def order_lines(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> list[LineEtaView]:
    """The order's lines still waiting, each with its place in its SKU's queue."""
    return [LineEtaView(**dict(r)) for r in await conn.fetch(_ORDER_LINES, order_id)]


def _unprocessable(error: ValidationError) -> HTTPException:
    return HTTPException(422, detail=error.errors(include_url=False, include_context=False))


async def run_command(
    pool: asyncpg.Pool,
    repository: StreamRepository[ProcurementState],
    command: Incoming,
    *,
    today: date,
    policy: PurchasePolicy,
    then: Callable[[asyncpg.Connection], Awaitable[View]],
) -> tuple[list[Decided[ProcurementState]], View]:
    """An admin command through the decision path, and `then`'s view of the result in the same
    transaction; retried on a concurrent append (503 after ATTEMPTS), 409 on a conflict."""
    inputs: list[Input[Incoming]] = [
        Input(projections.stream_id(command.sku), command, correlation_id=str(uuid.uuid4()))
    ]
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                decided = await apply(conn, repository, inputs, today=today, policy=policy)
                return decided, await then(conn)
        except ConcurrencyError:
            if attempt == ATTEMPTS:
                raise HTTPException(503, detail="the SKU is too busy; try again") from None
        except ProcurementConflict as e:
            raise HTTPException(409, detail=str(e)) from None
    raise AssertionError("unreachable")


def make_router(
    pool: asyncpg.Pool, repository: StreamRepository[ProcurementState], policy: PurchasePolicy, clock: Clock
) -> APIRouter:
    router = APIRouter(tags=["procurement"])

    @router.put("/skus/{sku}/suppliers", response_model=CatalogueChange)
    async def set_suppliers(sku: SkuPath, body: CatalogueRequest, staff: Staff) -> CatalogueChange:
        """Replace the SKU's supplier catalogue. A need nothing covered yet is bought for at once."""
        try:
            command = SetSupplierTerms(
                sku=sku, suppliers=[s.terms() for s in body.suppliers], actor=staff.subject
            )
        except ValidationError as e:
            raise _unprocessable(e) from None
        decided, view = await run_command(
            pool, repository, command, today=clock(), policy=policy, then=lambda c: catalogue_view(c, sku)
        )
        if view is None:  # the command always records the catalogue, so this is a bug, not bad input
            raise HTTPException(500, detail=f"the catalogue of {sku!r} was not stored")
        events = [e.event_type for d in decided for e in d.events]
        return CatalogueChange(**view.model_dump(), events=events)

    @router.get("/skus/{sku}/suppliers", response_model=CatalogueView)
    async def get_suppliers(sku: SkuPath, _: ReadsViews) -> CatalogueView:
        async with pool.acquire() as conn:
            view = await catalogue_view(conn, sku)
        if view is None:
            raise HTTPException(404, detail=f"no supplier catalogue was set for SKU {sku!r}")
        return view

    @router.get("/skus/{sku}", response_model=SkuView)
    async def get_sku(
        sku: SkuPath,
        _: ReadsViews,
        lines_offset: Annotated[int, Query(ge=0, description="Skip this many waiting lines")] = 0,
        lines_limit: Annotated[int, Query(ge=0, le=1000, description="Show at most this many")] = 100,
    ) -> SkuView:
        """The SKU's stock position, its open purchase orders and a page of its waiting lines' ETAs."""
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            view = await sku_view(conn, sku, lines_offset, lines_limit)
        if view is None:
            raise HTTPException(404, detail=f"procurement knows nothing of SKU {sku!r}")
        return view

    @router.get("/purchase-orders", response_model=list[PurchaseOrderView])
    async def list_purchase_orders(
        _: ReadsViews,
        sku: Annotated[str | None, Query(min_length=1, max_length=128, pattern=_ID_PATTERN)] = None,
        status: PoStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[PurchaseOrderView]:
        """Purchase orders by SKU and issue order, optionally of one SKU and/or status."""
        rows = await pool.fetch(
            f"SELECT {_PO_COLUMNS} FROM purchase_orders"
            " WHERE ($1::text IS NULL OR sku = $1) AND ($2::text IS NULL OR status = $2)"
            " ORDER BY sku, sequence LIMIT $3 OFFSET $4",
            sku,
            status,
            limit,
            offset,
        )
        return [_purchase_order(r) for r in rows]

    @router.get("/purchase-orders/{po_id}", response_model=PurchaseOrderView)
    async def get_purchase_order(po_id: PoIdPath, _: ReadsViews) -> PurchaseOrderView:
        row = await pool.fetchrow(f"SELECT {_PO_COLUMNS} FROM purchase_orders WHERE po_id = $1", po_id)
        if row is None:
            raise HTTPException(404, detail=f"unknown purchase order {po_id!r}")
        return _purchase_order(row)

    @router.get("/etas", response_model=list[LineEtaView])
    async def get_etas(
        _: ReadsViews,
        order_id: Annotated[str, Query(min_length=1, max_length=128, pattern=_ID_PATTERN)],
    ) -> list[LineEtaView]:
        """The ETA of each of the order's lines still waiting for stock ([] if none waits)."""
        return await order_lines(pool, order_id)

    @router.get("/reports/unsourced", response_model=list[UnsourcedSkuView])
    async def unsourced_skus(
        _: ReadsViews,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[UnsourcedSkuView]:
        """SKUs with backorders waiting and no supplier to buy from, by SKU: their customers are promised
        no date until a catalogue is set (PUT /skus/{sku}/suppliers)."""
        rows = await pool.fetch(
            "SELECT sku, waiting_lines, backordered AS waiting_units, updated_at FROM procurement_skus"
            " WHERE NOT sourced AND waiting_lines > 0 ORDER BY sku LIMIT $1 OFFSET $2",
            limit,
            offset,
        )
        return [UnsourcedSkuView(**dict(r)) for r in rows]

    @router.get("/reports/suppliers", response_model=list[SupplierReliabilityView])
    async def supplier_reliability(_: ReadsViews) -> list[SupplierReliabilityView]:
        """Per supplier with receipts: its on-time rate against its confirmed dates, how late it runs (median
        and 80th percentile) and how well the planned dates held, by supplier id."""
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return await reliability_views(conn)

    return router
