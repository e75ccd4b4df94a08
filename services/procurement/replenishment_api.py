"""HTTP API of demand-driven replenishment: a SKU's settings and recommendation
(PUT/GET /skus/{sku}/replenishment) and the demand signals for purchasing (GET /reports/demand-signals).

The recommendation is computed from the SKU's folded state (its closed days' demand, its suppliers'
receipts) and the open day's units so far in the ledger, exactly as the review decides it; GET changes
nothing. In `auto` mode the review applies it (README "Replenishment").
"""

from datetime import date
from decimal import Decimal
from typing import Annotated

import asyncpg
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from backbone.aggregate import StreamRepository
from backbone.auth import ReadsViews, Staff, WithoutActor
from backbone.contracts.events import ServiceLevel
from services.procurement import demand, projections
from services.procurement.api import SkuPath, run_command
from services.procurement.domain import ProcurementState, SetReplenishment
from services.procurement.events import ReplenishmentMode
from services.procurement.forecast import backorder_rate
from services.procurement.handlers import Clock
from services.procurement.planning import PurchasePolicy, choose_supplier
from services.procurement.replenishment import DEFAULT_SERVICE_LEVEL

# --- bodies and views ------------------------------------------------------------------------------------


class ReplenishmentRequest(WithoutActor):
    """How the SKU's reorder point and safety stock are kept; the actor (audited) is the token's subject."""

    model_config = ConfigDict(extra="forbid")

    mode: ReplenishmentMode = Field(
        description="manual: staff type them in inventory (PUT /skus/{sku}/policy there); suggest:"
        " procurement shows its recommendation here; auto: procurement applies it (inventory records"
        " SkuPolicyChanged by actor procurement:auto)"
    )
    service_level: ServiceLevel = Field(
        default=DEFAULT_SERVICE_LEVEL,
        description="Cycle service level the safety stock is sized for, 0.5 <= level < 1 (0.95: a stock-out"
        " in at most 1 of 20 replenishment cycles)",
    )


class RecommendationView(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from forecast.Recommendation

    reorder_point: int = Field(description="ceil(d * L) + safety_stock")
    safety_stock: int = Field(description="ceil(z * sqrt(L * sigma_d^2 + d^2 * sigma_L^2))")
    demand_per_day: float = Field(description="d: Croston/SBA units per day")
    demand_sigma_per_day: float = Field(description="sigma_d")
    lead_time_days: float = Field(description="L: from the supplier's receipts (EWMA), else as quoted")
    lead_time_sigma_days: float = Field(description="sigma_L")
    z: float = Field(description="The service level's standard normal quantile")
    lead_time_demand: float = Field(description="d * L")
    basis: str


class ReplenishmentView(BaseModel):
    sku: str
    mode: ReplenishmentMode
    service_level: Decimal
    reorder_point: int = Field(description="In force, as procurement last learned it from inventory")
    safety_stock: int
    supplier_id: str | None = Field(description="Whose lead time the recommendation uses (bought from)")
    supplier_delays: dict[str, int] = Field(
        description="Days each supplier's dates are moved in ETAs: the P80 of its lateness (README)"
    )
    demand_days: int = Field(description="Closed days with demand in the estimate")
    last_demand_day: date | None
    open_day_units: int = Field(description="Units ordered today so far (looked at, not yet recorded)")
    recommendation: RecommendationView | None = Field(
        description="Null while no demand was seen or no supplier is known"
    )
    applied: bool = Field(description="Whether the review applies the recommendation (mode auto)")


class RisingSku(BaseModel):
    sku: str
    fast_rate: float = Field(description="Recent units per day (EWMA alpha 0.3)")
    slow_rate: float = Field(description="Long-run units per day (EWMA alpha 0.05)")
    demand_per_day: float
    last_demand_day: date | None
    mode: ReplenishmentMode


class BackorderingSku(BaseModel):
    sku: str
    demanded: int
    backordered: int
    backorder_rate: float = Field(description="backordered / demanded x 100")
    rejected: int = Field(description="Units refused (policy deny, or over the cap)")


class CancellingSku(BaseModel):
    sku: str
    cancelled: int = Field(description="Waiting units their customers gave up")
    demanded: int


class DemandSignals(BaseModel):
    since: date = Field(description="First day of the window (UTC days, today included)")
    rising: list[RisingSku] = Field(description="SKUs whose recent demand is at least 1.5x their long-run")
    most_backordered: list[BackorderingSku]
    cancelled_units: int = Field(description="Waiting units lost to cancellations in the window, all SKUs")
    most_cancelled: list[CancellingSku]


# --- queries ---------------------------------------------------------------------------------------------

_RISING = """
SELECT sku, fast_rate, slow_rate, demand_per_day, last_demand_day, mode FROM procurement_replenishment
WHERE rising AND last_demand_day >= $1
ORDER BY fast_rate / greatest(slow_rate, 1e-9) DESC, sku LIMIT $2
"""
_BACKORDERED = """
SELECT sku, sum(demanded)::bigint AS demanded, sum(backordered)::bigint AS backordered,
       sum(rejected)::bigint AS rejected
FROM procurement_demand_days WHERE day >= $1
GROUP BY sku HAVING sum(backordered) > 0
ORDER BY sum(backordered) DESC, sku LIMIT $2
"""
_CANCELLED = """
SELECT sku, sum(cancelled)::bigint AS cancelled, sum(demanded)::bigint AS demanded
FROM procurement_demand_days WHERE day >= $1
GROUP BY sku HAVING sum(cancelled) > 0
ORDER BY sum(cancelled) DESC, sku LIMIT $2
"""


def replenishment_view(
    state: ProcurementState, policy: PurchasePolicy, today: date, open_day_units: int
) -> ReplenishmentView:
    recommended = state.recommendation(today, policy, open_day_units)
    supplier = choose_supplier(state.suppliers, policy, state.supplier_delays)
    estimate = state.demand
    return ReplenishmentView(
        sku=state.sku,
        mode=state.replenishment.mode,
        service_level=state.replenishment.service_level,
        reorder_point=state.stock.reorder_point,
        safety_stock=state.stock.safety_stock,
        supplier_id=supplier.supplier_id if supplier is not None else None,
        supplier_delays=dict(state.supplier_delays.items()),
        demand_days=estimate.days_with_demand if estimate is not None else 0,
        last_demand_day=estimate.last_day if estimate is not None else None,
        open_day_units=open_day_units,
        recommendation=RecommendationView.model_validate(recommended) if recommended is not None else None,
        applied=state.replenishment.mode == "auto",
    )


async def demand_signals(conn: asyncpg.Connection, since: date, limit: int) -> DemandSignals:
    rising = [RisingSku(**dict(r)) for r in await conn.fetch(_RISING, since, limit)]
    backordered = [
        BackorderingSku(**dict(r), backorder_rate=backorder_rate(r["backordered"], r["demanded"]))
        for r in await conn.fetch(_BACKORDERED, since, limit)
    ]
    cancelled = [CancellingSku(**dict(r)) for r in await conn.fetch(_CANCELLED, since, limit)]
    total = await conn.fetchval(
        "SELECT coalesce(sum(cancelled), 0)::bigint FROM procurement_demand_days WHERE day >= $1", since
    )
    return DemandSignals(
        since=since,
        rising=rising,
        most_backordered=backordered,
        cancelled_units=int(total),
        most_cancelled=cancelled,
    )


def make_router(
    pool: asyncpg.Pool, repository: StreamRepository[ProcurementState], policy: PurchasePolicy, clock: Clock
) -> APIRouter:
    router = APIRouter(tags=["replenishment"])

    async def view(conn: asyncpg.Connection, sku: str, today: date) -> ReplenishmentView | None:
        """None if procurement knows nothing of the SKU: no stream and no demand today."""
        loaded = await repository.load(conn, projections.stream_id(sku))
        units = await demand.open_day_units(conn, sku, today)
        if loaded.version == 0 and units == 0:
            return None
        return replenishment_view(loaded.state, policy, today, units)

    @router.put("/skus/{sku}/replenishment", response_model=ReplenishmentView)
    async def set_replenishment(sku: SkuPath, body: ReplenishmentRequest, staff: Staff) -> ReplenishmentView:
        """Set the SKU's mode and service level (audited). Switching to auto applies the recommendation at
        once, and buys for it if stock and open orders fall short of the new reorder point."""
        today = clock()
        command = SetReplenishment(
            sku=sku,
            mode=body.mode,
            service_level=body.service_level,
            actor=staff.subject,
            today_units=await demand.open_day_units(pool, sku, today),
        )
        _, result = await run_command(
            pool, repository, command, today=today, policy=policy, then=lambda c: view(c, sku, today)
        )
        if result is None:  # the command always records the settings, so this is a bug, not bad input
            raise HTTPException(500, detail=f"the replenishment settings of {sku!r} were not stored")
        return result

    @router.get("/skus/{sku}/replenishment", response_model=ReplenishmentView)
    async def get_replenishment(sku: SkuPath, _: ReadsViews) -> ReplenishmentView:
        """The SKU's settings and what its demand and lead time recommend, with every input."""
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            result = await view(conn, sku, clock())
        if result is None:
            raise HTTPException(404, detail=f"procurement knows nothing of SKU {sku!r}")
        return result

    @router.get("/reports/demand-signals", response_model=DemandSignals)
    async def get_demand_signals(
        _: ReadsViews,
        days: Annotated[int, Query(ge=1, le=366, description="Window in days, today included")] = 28,
        limit: Annotated[int, Query(ge=1, le=1000, description="Most SKUs per list")] = 20,
    ) -> DemandSignals:
        """For purchasing: SKUs whose demand rose, SKUs that backordered most, units lost to cancellations."""
        since = date.fromordinal(clock().toordinal() - days + 1)
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return await demand_signals(conn, since, limit)

    return router
