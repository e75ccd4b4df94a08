"""HTTP API of the inventory: stock queries and the audited admin commands (policy, adjustment, count).

Substitutes (PUT/GET /skus/{sku}/substitutes): the SKUs a customer may switch this SKU's backordered
units to, in preference order; the notifier offers those in stock, the order service switches (POST
/orders/{order_id}/lines/{line_id}/substitution).

Admin commands run the domain like the consumer does (lock, load, decide, append, project) in one
transaction, retried a few times on ConcurrencyError. InvalidCommand -> 422, StockConflict -> 409.
Adjustments (adjustment_id) and counts (count_id) are idempotent: the request is recorded in the
transaction that applies it, a retry of the same request answers 200 with no new events and the
current stock, the same id with other content answers 409.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import asyncpg
from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from backbone.auth import ReadsViews, Staff, WithoutActor
from backbone.contracts.events import MAX_SUBSTITUTES
from backbone.contracts.types import Identifier, NonNegativeQuantity, Text
from backbone.eventstore import ConcurrencyError, EventStore
from services.inventory import reports
from services.inventory.domain import (
    MAX_ON_HAND,
    AdjustStock,
    BackorderPolicy,
    Command,
    CountStock,
    InvalidCommand,
    SetPolicy,
    SetSubstitutes,
    StockConflict,
    UnknownSkuPolicy,
)
from services.inventory.handlers import apply_commands, new_repository, work_for
from services.inventory.priority import PriorityPolicy

ATTEMPTS = 5
SkuPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^\S(?:.*\S)?$")]
# Who may do what (README "Roles"): the audited commands are staff's; the actor is the token's subject.


class PolicyRequest(WithoutActor):
    backorder_policy: BackorderPolicy
    backorder_cap: NonNegativeQuantity | None = None
    reorder_point: NonNegativeQuantity = 0
    safety_stock: NonNegativeQuantity = 0


class AdjustmentRequest(WithoutActor):
    delta: int = Field(ge=-MAX_ON_HAND, le=MAX_ON_HAND, description="Units added or removed; not 0")
    reason: Text
    adjustment_id: Identifier = Field(
        default_factory=lambda: str(uuid.uuid4()),
        description="Idempotency key: a repeated request with the same id is applied once",
    )


class SubstitutesRequest(WithoutActor):
    substitutes: list[Identifier] = Field(
        max_length=MAX_SUBSTITUTES,
        description="Preference order, unique, not the SKU itself; [] = none. Replaces the previous list",
    )


class SubstitutesView(BaseModel):
    sku: str
    substitutes: list[str] = Field(description="Preference order; the notifier offers the in-stock ones")


class CountRequest(WithoutActor):
    count_id: Identifier = Field(description="Idempotency key: a repeated request is applied once")
    counted: NonNegativeQuantity = Field(description="Units found; becomes stock on hand")
    reason: Text
    counted_at: AwareDatetime | None = Field(default=None, description="When counted; default: now")


class QueueEntry(BaseModel):
    position: int
    order_id: str
    line_id: str
    quantity: int


class StockView(BaseModel):
    """The SKU's figures and a page of its backorder queue (`queue_offset`, `queue_limit`)."""

    sku: str
    version: int
    on_hand: int
    reserved: int
    available: int
    backordered: int
    backorder_policy: str
    backorder_cap: int | None
    reorder_point: int
    safety_stock: int
    waiting_lines: int = Field(description="Lines in the backorder queue; `queue` shows a page of them")
    known: bool = Field(
        description="Ever stocked, counted, given a policy or a supplier; orders for an unknown SKU follow "
        "UNKNOWN_SKU_POLICY"
    )
    sourced: bool = Field(description="Procurement knows at least one supplier for the SKU")
    substitutes: list[str] = Field(description="What customers may switch its backorders to, preferred first")
    queue: list[QueueEntry]


class CommandResult(BaseModel):
    events: list[str] = Field(description="Types of the events the command caused, in order")
    stock: StockView


class AllocationView(BaseModel):
    version: int = Field(description="Of the SKU's stream event that allocated: the cursor for paging")
    order_id: str
    line_id: str
    quantity: int
    source: str
    priority_reason: str
    at: str
    event_id: str


_QUEUE_PAGE = """
SELECT row_number() OVER (ORDER BY priority_score DESC, placed_at, sequence) + $2 AS position,
       order_id, line_id, quantity
FROM (SELECT * FROM backorder_queue WHERE sku = $1
      ORDER BY priority_score DESC, placed_at, sequence OFFSET $2 LIMIT $3) page
ORDER BY position
"""

QueueOffset = Annotated[int, Query(ge=0, description="Skip this many waiting lines")]
QueueLimit = Annotated[int, Query(ge=0, le=1000, description="Show at most this many waiting lines")]


async def stock_view(
    conn: asyncpg.Connection, sku: str, offset: int = 0, limit: int = 100
) -> StockView | None:
    row = await conn.fetchrow("SELECT * FROM stock WHERE sku = $1", sku)
    if row is None:
        return None
    queue = await conn.fetch(_QUEUE_PAGE, sku, offset, limit) if limit else []
    return StockView(**dict(row), queue=[QueueEntry(**dict(q)) for q in queue])


Claim = Callable[[asyncpg.Connection], Awaitable[bool]]
C = TypeVar("C", bound=BaseModel)


def built(build: Callable[[], C]) -> C:
    """The command `build` makes from a request; a request the command's rules refuse -> 422."""
    try:
        return build()
    except ValidationError as e:
        raise HTTPException(422, detail=e.errors(include_url=False, include_context=False)) from None


async def _claim_request(
    conn: asyncpg.Connection,
    table: str,
    key: tuple[str, str],
    fields: dict[str, object],
    *,
    what: str,
    loose: tuple[str, ...] = (),
) -> bool:
    """True if the request id (`key`: column, value) is new; False for a retry of the same request; 409
    if it was used for another request. A concurrent duplicate waits on the primary key until the first
    one commits. `loose`: fields a retry may differ in (they were filled in for the request)."""
    column, request_id = key
    names = [column, *fields]
    placeholders = ", ".join(f"${n}" for n in range(1, len(names) + 1))
    inserted = await conn.fetchval(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})"
        " ON CONFLICT DO NOTHING RETURNING true",
        request_id,
        *fields.values(),
    )
    if inserted:
        return True
    earlier = await conn.fetchrow(f"SELECT {', '.join(fields)} FROM {table} WHERE {column} = $1", request_id)
    if earlier is not None and any(earlier[f] != v for f, v in fields.items() if f not in loose):
        raise StockConflict(f"{column} {request_id!r} was used for another {what}")
    return False


async def _claim(conn: asyncpg.Connection, command: AdjustStock) -> bool:
    fields = {"sku": command.sku, "delta": command.delta, "reason": command.reason, "actor": command.actor}
    return await _claim_request(
        conn, "adjustment_requests", ("adjustment_id", command.adjustment_id), fields, what="adjustment"
    )


async def _claim_count(conn: asyncpg.Connection, command: CountStock, *, timed: bool) -> bool:
    """`timed`: the request gave counted_at; a retry that leaves it out (so got another "now") is the
    same request."""
    fields = {
        "sku": command.sku,
        "counted": command.counted,
        "reason": command.reason,
        "actor": command.actor,
        "counted_at": command.counted_at,
    }
    return await _claim_request(
        conn,
        "count_requests",
        ("count_id", command.count_id),
        fields,
        what="count",
        loose=() if timed else ("counted_at",),
    )


def make_router(
    pool: asyncpg.Pool,
    store: EventStore,
    priority: PriorityPolicy,
    unknown_sku: UnknownSkuPolicy = "reject",
) -> APIRouter:
    router = APIRouter(tags=["inventory"])
    repository = new_repository(store)

    async def run(sku: str, command: Command, claim: Claim | None = None) -> CommandResult:
        """Apply `command`, unless `claim` (in the same transaction) says the request was applied before."""
        work = [work_for(command, correlation_id=str(uuid.uuid4()))]
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with pool.acquire() as conn, conn.transaction():
                    events = {}
                    if claim is None or await claim(conn):
                        events = await apply_commands(conn, repository, priority, work, unknown_sku)
                    view = await stock_view(conn, sku)
                break
            except ConcurrencyError:
                if attempt == ATTEMPTS:
                    raise HTTPException(503, detail="the SKU is too busy; try again") from None
            except InvalidCommand as e:
                raise HTTPException(422, detail=str(e)) from None
            except StockConflict as e:
                raise HTTPException(409, detail=str(e)) from None
        if view is None:  # a no-op on a SKU never seen
            raise HTTPException(404, detail=f"unknown SKU {sku!r}")
        return CommandResult(events=[e.event_type for e in events.get(sku, [])], stock=view)

    @router.get("/stock/{sku}", response_model=StockView)
    async def get_stock(
        sku: SkuPath, _: ReadsViews, queue_offset: QueueOffset = 0, queue_limit: QueueLimit = 100
    ) -> StockView:
        async with pool.acquire() as conn:
            view = await stock_view(conn, sku, queue_offset, queue_limit)
        if view is None:
            raise HTTPException(404, detail=f"unknown SKU {sku!r}")
        return view

    @router.get("/reports/waiting", response_model=list[reports.WaitingSku])
    async def waiting_skus(
        _: ReadsViews,
        limit: Annotated[int, Query(ge=1, le=reports.MAX_WAITING_SKUS)] = 10,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[reports.WaitingSku]:
        """SKUs with lines in their backorder queue, the most units waiting first (then by SKU)."""
        return await reports.waiting_skus(pool, limit, offset)

    @router.put("/skus/{sku}/policy", response_model=CommandResult)
    async def set_policy(sku: SkuPath, body: PolicyRequest, staff: Staff) -> CommandResult:
        return await run(sku, built(lambda: SetPolicy(sku=sku, actor=staff.subject, **body.model_dump())))

    @router.put(
        "/skus/{sku}/substitutes",
        response_model=CommandResult,
        responses={422: {"description": "Not unique, the SKU itself, more than 20, or not SKUs"}},
    )
    async def set_substitutes(sku: SkuPath, body: SubstitutesRequest, staff: Staff) -> CommandResult:
        """Replace the SKU's substitutes (audited: SkuSubstitutesChanged names the token's subject as
        actor; the same list again records nothing). The substitutes need not be stocked: the notifier
        offers only those with enough units available, and a switch to one that ran out meanwhile
        backorders like any line."""
        command = built(lambda: SetSubstitutes(sku=sku, substitutes=body.substitutes, actor=staff.subject))
        return await run(sku, command)

    @router.get("/skus/{sku}/substitutes", response_model=SubstitutesView, responses={404: {}})
    async def get_substitutes(sku: SkuPath, _: ReadsViews) -> SubstitutesView:
        """The SKU's substitutes, preferred first ([] = none); 404 for a SKU inventory never recorded."""
        row = await pool.fetchrow("SELECT substitutes FROM stock WHERE sku = $1", sku)
        if row is None:
            raise HTTPException(404, detail=f"unknown SKU {sku!r}")
        return SubstitutesView(sku=sku, substitutes=list(row["substitutes"]))

    @router.post("/skus/{sku}/adjustments", response_model=CommandResult)
    async def adjust(sku: SkuPath, body: AdjustmentRequest, staff: Staff) -> CommandResult:
        command = built(lambda: AdjustStock(sku=sku, actor=staff.subject, **body.model_dump()))
        return await run(sku, command, lambda conn: _claim(conn, command))

    @router.post("/skus/{sku}/counts", response_model=CommandResult)
    async def count(sku: SkuPath, body: CountRequest, staff: Staff) -> CommandResult:
        """Record a cycle count: stock on hand becomes `counted` (StockCounted explains the difference);
        a count above on hand serves waiting lines. 409 if fewer were counted than are reserved."""
        counted_at = body.counted_at or datetime.now(UTC)
        fields = {**body.model_dump(), "counted_at": counted_at, "actor": staff.subject}
        command = built(lambda: CountStock(sku=sku, **fields))
        timed = body.counted_at is not None
        return await run(sku, command, lambda conn: _claim_count(conn, command, timed=timed))

    @router.get("/skus/{sku}/allocations", response_model=list[AllocationView])
    async def allocations(
        sku: SkuPath,
        _: ReadsViews,
        after_version: Annotated[int, Query(ge=0, description="Only allocations after this one")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    ) -> list[AllocationView]:
        """Who got which units, when and why, oldest first; page on with the last one's `version`."""
        rows = await pool.fetch(
            "SELECT version, order_id, line_id, quantity, source, priority_reason, at, event_id"
            " FROM allocation_audit WHERE sku = $1 AND version > $2 ORDER BY version LIMIT $3",
            sku,
            after_version,
            limit,
        )
        return [
            AllocationView(**{**dict(r), "at": r["at"].isoformat(), "event_id": str(r["event_id"])})
            for r in rows
        ]

    return router
