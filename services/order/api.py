"""HTTP API of the order service: place and cancel orders, look them up (with shipments), list backorders,
report.

Commands run the domain like the consumer does (handlers.apply: lock, load, decide, append, project) in
one transaction, retried a few times on ConcurrencyError; the events they append are published on the
orders topic by the outbox relay. Domain errors: OrderNotFound/LineNotFound -> 404, OrderConflict -> 409,
InvalidCommand -> 422, with the domain's message as `detail`. Nothing is written when a command fails.
A POST /orders body over the contract's size limit is refused with 413 before it is parsed.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

import asyncpg
import structlog
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backbone.auth import Principal, ReadsViews, Role, requires
from backbone.contracts.events import OrderPlaced
from backbone.contracts.limits import MAX_EVENT_BYTES
from backbone.contracts.types import Identifier, Money, Quantity
from backbone.decider import Input
from backbone.eventstore import ConcurrencyError, EventStore
from services.order import projections, reports, views
from services.order.domain import (
    CancelBackorderedUnits,
    CancelOrder,
    InvalidCommand,
    LineNotFound,
    OrderError,
    OrderNotFound,
    PlaceOrder,
    SubstituteBackorderedUnits,
    order_stream_id,
)
from services.order.handlers import Incoming, apply, new_repository

log = structlog.get_logger(__name__)

ATTEMPTS = 5
# Bodies of POST /orders are refused (413) beyond the contract's event size: a valid order is well below
# it (tests/unit/backbone/test_edge_limits.py), and the body is never held in memory beyond it.
MAX_BODY_BYTES = MAX_EVENT_BYTES
_ID = {"min_length": 1, "max_length": 128, "pattern": r"^\S(?:.*\S)?$"}
OrderIdPath = Annotated[str, Path(**_ID)]
LineIdPath = Annotated[str, Path(**_ID)]
RequestReason = Literal["customer_request", "shop_request"]
# Who may do what (README "Roles"). Customer names and e-mail addresses only to support and staff.
ReadsOrders = Annotated[Principal, Depends(requires(Role.SUPPORT, Role.STAFF, Role.READER, Role.CHECKOUT))]
PlacesOrders = Annotated[Principal, Depends(requires(Role.CHECKOUT))]
ActsForCustomers = Annotated[Principal, Depends(requires(Role.SUPPORT))]


class CancelOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: RequestReason = "customer_request"


class CancelBackorderedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    quantity: Quantity | None = Field(default=None, description="Units to cancel; default: all still waiting")
    reason: RequestReason = "customer_request"


class SubstitutionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    sku: Identifier = Field(description="The substitute: one inventory lists for the line's SKU")
    substitution_id: Identifier | None = Field(
        default=None,
        description="Names the switch: the same id again changes nothing (200, the first result). "
        "Default: derived from the line and the SKU, as in the notifier's backordered message",
    )
    unit_price: Money | None = Field(
        default=None, description="Of the new line; default: the replaced line's (the customer paid it)"
    )


class SubstitutionResult(BaseModel):
    events: list[str] = Field(description="Types of the events the command appended; [] for a repeat")
    substitution: views.SubstitutionView
    order: views.OrderView


class CommandResult(BaseModel):
    events: list[str] = Field(description="Types of the events the command appended, in order")
    order: views.OrderView


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with its $defs inlined, so it stands alone inside the OpenAPI document."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return dict(resolve(schema))


_PLACE_ORDER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline_schema(OrderPlaced)}},
        "description": "The OrderPlaced payload of the event contract (docs/contract.md), validated strictly",
    }
}


def _too_large() -> HTTPException:
    return HTTPException(413, detail=f"the body exceeds the limit of {MAX_BODY_BYTES} bytes")


async def _bounded_body(request: Request) -> bytes:
    """The request body, read only up to MAX_BODY_BYTES: a larger one is refused as soon as that shows."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    return bytes(body)


def _as_seen_by(view: views.OrderView, principal: Principal) -> views.OrderView:
    """The order without the customer's name and e-mail address, unless the caller may see them."""
    if principal.sees_customer_data:
        return view
    return view.model_copy(update={"customer": view.customer.redacted()})


def _domain_error(error: OrderError) -> HTTPException:
    match error:
        case OrderNotFound() | LineNotFound():
            return HTTPException(404, detail=str(error))
        case InvalidCommand():
            return HTTPException(422, detail=str(error))
    return HTTPException(409, detail=str(error))  # OrderConflict, and anything the order refuses


def make_router(pool: asyncpg.Pool, store: EventStore, default_max_wait_days: int) -> APIRouter:
    router = APIRouter(tags=["orders"])
    repository = new_repository(store)

    async def execute(order_id: str, command: Incoming) -> list[str]:
        """Run one command on the order's stream; returns the types of the events it appended."""
        inputs: list[Input[Incoming]] = [Input(order_stream_id(order_id), command, correlation_id=order_id)]
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with pool.acquire() as conn, conn.transaction():
                    decided = await apply(conn, repository, inputs)
                return [e.event_type for d in decided for e in d.events]
            except ConcurrencyError:
                if attempt == ATTEMPTS:
                    raise HTTPException(503, detail="the order is too busy; try again") from None
            except OrderError as e:
                raise _domain_error(e) from None
        raise AssertionError("unreachable")

    async def view_of(order_id: str, principal: Principal) -> views.OrderView:
        """The order as `principal` may see it; 404 also for another shop's order of a shop's token (so
        it learns nothing of other shops' orders)."""
        async with pool.acquire() as conn:
            view = await views.order_view(conn, store, order_id, default_max_wait_days)
        if view is None or not principal.may_act_for_shop(view.shop_id):
            raise HTTPException(404, detail=f"order {order_id} is unknown")
        return _as_seen_by(view, principal)

    async def run(order_id: str, command: Incoming, principal: Principal) -> CommandResult:
        events = await execute(order_id, command)
        # OrderCancelled has no actor field: the audit trail of who cancelled is this log line.
        log.info("order command", command=type(command).__name__, order_id=order_id, actor=principal.subject)
        return CommandResult(events=events, order=await view_of(order_id, principal))

    @router.post(
        "/orders",
        status_code=202,
        response_model=views.OrderView,
        openapi_extra=_PLACE_ORDER_BODY,
        responses={
            409: {"description": "An order with this id exists with other content"},
            413: {"description": f"The body is larger than {MAX_BODY_BYTES} bytes"},
            422: {"description": "The body is not a valid OrderPlaced payload; `detail` lists the errors"},
        },
    )
    async def place_order(request: Request, response: Response, principal: PlacesOrders) -> views.OrderView:
        """Take an order: OrderPlaced is appended to the order's stream and published on the orders topic,
        where inventory reserves it. Accepted (202): inventory's answer follows asynchronously; see the
        order's status. Retrying with the identical body is accepted again without a second event."""
        try:
            # The contract model is strict, so it parses the JSON itself (dates and decimals as strings).
            placed = OrderPlaced.model_validate_json(await _bounded_body(request))
        except ValidationError as e:
            # Without the inputs: they may be bytes (not JSON), or echo the whole body for one error.
            detail = e.errors(include_url=False, include_context=False, include_input=False)
            raise HTTPException(422, detail=detail) from None
        if not principal.may_act_for_shop(placed.shop_id):
            raise HTTPException(403, detail=f"your token places orders for shop {principal.shop} only")
        await execute(placed.order_id, PlaceOrder(placed))
        response.headers["Location"] = f"/orders/{quote(placed.order_id, safe='')}"
        return await view_of(placed.order_id, principal)

    @router.get("/orders/{order_id}", response_model=views.OrderView, responses={404: {}})
    async def get_order(order_id: OrderIdPath, principal: ReadsOrders) -> views.OrderView:
        """The order from its event stream: lines with every quantity, status, ETAs, what may ship now,
        and the stream's history. 404 if the order was never placed. The customer's name and e-mail
        address only for support and staff; a shop's checkout token sees only that shop's orders."""
        return await view_of(order_id, principal)

    @router.post(
        "/orders/{order_id}/cancel",
        response_model=CommandResult,
        responses={404: {}, 409: {"description": "Nothing left to cancel (shipped, cancelled or pending)"}},
    )
    async def cancel_order(
        order_id: OrderIdPath,
        principal: ActsForCustomers,
        body: Annotated[CancelOrderRequest | None, Body()] = None,
    ) -> CommandResult:
        """Cancel every unshipped unit, also of lines inventory has not decided yet: publishes OrderCancelled
        (waiting units first, then reserved ones). The units count as cancelled, and paid ones are
        refunded (RefundRequested), when inventory confirms what it released (StockReleased); until then
        they show as `cancellation_pending`. Units already shipped are never cancelled."""
        reason = (body or CancelOrderRequest()).reason
        return await run(order_id, CancelOrder(order_id, datetime.now(UTC), reason), principal)

    @router.post(
        "/orders/{order_id}/lines/{line_id}/cancel-backordered",
        response_model=CommandResult,
        responses={404: {}, 409: {"description": "Nothing waits on the line"}, 422: {}},
    )
    async def cancel_backordered(
        order_id: OrderIdPath,
        line_id: LineIdPath,
        principal: ActsForCustomers,
        body: Annotated[CancelBackorderedRequest | None, Body()] = None,
    ) -> CommandResult:
        """Cancel (some of) the units of a line still waiting for stock; allocated units still ship.
        Publishes OrderCancelled (only_waiting): a fill that reaches the line first is kept and ships;
        the units inventory drops are refunded when it confirms them (StockReleased)."""
        request = body or CancelBackorderedRequest()
        command = CancelBackorderedUnits(
            order_id, line_id, datetime.now(UTC), quantity=request.quantity, reason=request.reason
        )
        return await run(order_id, command, principal)

    @router.post(
        "/orders/{order_id}/lines/{line_id}/substitution",
        response_model=SubstitutionResult,
        responses={
            404: {"description": "Unknown order or line"},
            409: {
                "description": "Nothing waits on the line (or it is being cancelled), the SKU is the line's "
                "own or not one of its substitutes, or the substitution_id names another switch"
            },
            422: {"description": "The body is not valid"},
        },
    )
    async def substitute(
        order_id: OrderIdPath, line_id: LineIdPath, body: SubstitutionRequest, principal: ActsForCustomers
    ) -> SubstitutionResult:
        """Switch every unit of the line still waiting for stock to a substitute SKU, in one action:
        publishes OrderLineSubstituted, which gives up those units of the line (allocated units still
        ship; a fill that reaches the line first is kept) and adds a new line of the substitute with the
        same units at the line's price. Inventory reserves the new line as it would any line of the
        order, ranked from the order's placement; whether the substitute is in stock is not checked here:
        if it ran out meanwhile, the new line simply backorders. Nothing is refunded: the payment moves
        with the units. Repeated with the same substitution_id: 200, the first switch, no new event."""
        async with pool.acquire() as conn:
            substitutes = await projections.substitutes_of_line(conn, order_id, line_id)
        command = SubstituteBackorderedUnits(
            order_id,
            line_id,
            body.sku,
            datetime.now(UTC),
            substitutes=substitutes,
            substitution_id=body.substitution_id,
            unit_price=body.unit_price,
        )
        result = await run(order_id, command, principal)
        # Appended by this request or an earlier one with the same id: the order lists it either way.
        [switched] = [s for s in result.order.substitutions if s.substitution_id == command.named]
        return SubstitutionResult(events=result.events, substitution=switched, order=result.order)

    @router.get("/backorders", response_model=list[views.BackorderView])
    async def backorders(
        _: ReadsViews,
        sku: Annotated[str | None, Query(**_ID)] = None,
        customer_id: Annotated[str | None, Query(**_ID)] = None,
        min_age_days: Annotated[
            float | None, Query(ge=0, description="Placed at least this long ago")
        ] = None,
        max_age_days: Annotated[float | None, Query(ge=0, description="Placed at most this long ago")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Sequence[views.BackorderView]:
        """Open backordered lines (units still waiting), oldest order first, with age and ETA."""
        if min_age_days is not None and max_age_days is not None and min_age_days > max_age_days:
            raise HTTPException(422, detail="min_age_days must not exceed max_age_days")
        async with pool.acquire() as conn:
            return await views.open_backorders(
                conn,
                now=datetime.now(UTC),
                default_max_wait_days=default_max_wait_days,
                sku=sku,
                customer_id=customer_id,
                min_age_days=min_age_days,
                max_age_days=max_age_days,
                limit=limit,
            )

    @router.get("/reports", response_model=reports.Report, description=reports.__doc__)
    async def report(_: ReadsViews) -> reports.Report:
        async with pool.acquire() as conn:
            return await reports.report(conn, datetime.now(UTC))

    @router.get("/reports/rates", response_model=reports.RatesOverTime)
    async def rates_over_time(
        _: ReadsViews,
        bucket: reports.RateBucket = "hour",
        buckets: Annotated[int, Query(ge=1, le=reports.MAX_RATE_BUCKETS)] = 24,
        sku: Annotated[str | None, Query(**_ID)] = None,
    ) -> reports.RatesOverTime:
        """Backorder rate and fill rate (as in GET /reports) of the orders placed in each of the last
        `buckets` whole UTC hours or days, the current one included; optionally of one SKU's lines."""
        async with pool.acquire() as conn:
            return await reports.rates_over_time(conn, datetime.now(UTC), bucket, buckets, sku)

    @router.get("/reports/ageing", response_model=reports.WaitingAgeing)
    async def waiting_ageing(
        _: ReadsViews, sku: Annotated[str | None, Query(**_ID)] = None
    ) -> reports.WaitingAgeing:
        """The lines with units still waiting, by how long since their order was placed (optionally of
        one SKU): a histogram from under an hour to 30 days and more."""
        async with pool.acquire() as conn:
            return await reports.waiting_ageing(conn, datetime.now(UTC), sku)

    return router
