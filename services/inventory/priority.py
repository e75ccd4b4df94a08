"""Who gets received stock first: the allocation order of a SKU's waiting backorders, and why.

A shop configures one PriorityPolicy. It ranks queue entries and explains each entry's place in words,
so that a customer (or a support agent) can be told why a line was served when it was.
"""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from backbone.contracts.events import CustomerTier

PriorityMode = Literal["first_come_first_served", "weighted"]

_POINTS = Decimal("0.01")  # scores are shown, and compared, to the hundredth of a point
_DEFAULT_TIER_POINTS: dict[CustomerTier, Decimal] = {
    "standard": Decimal(0),
    "silver": Decimal(1),
    "gold": Decimal(2),
    "platinum": Decimal(3),
}


class Scored(Protocol):
    """What a line's weighted score is made of (an order line being reserved has it already)."""

    @property
    def tier(self) -> CustomerTier: ...
    @property
    def urgent(self) -> bool: ...
    @property
    def line_value(self) -> Decimal: ...


class Prioritised(Scored, Protocol):
    """What the policy needs to know about a waiting line."""

    @property
    def placed_at(self) -> datetime: ...
    @property
    def sequence(self) -> int: ...


E = TypeVar("E", bound=Prioritised)


class PriorityPolicy(BaseModel):
    """Ranks backorders: first come, first served by placement time, or by a weighted score.

    The weighted score adds points for the customer's tier, the urgent flag and the line's value
    (capped, so that one big order cannot outrank everything). Placement time, then arrival order,
    break ties in both modes, so the ranking is total and stable.
    Not strict, so that it can be read from configuration (strings for decimals).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: PriorityMode = "first_come_first_served"
    tier_points: dict[CustomerTier, Decimal] = Field(
        default_factory=lambda: dict(_DEFAULT_TIER_POINTS),
        description="Points per customer tier; a tier left out scores 0",
    )
    urgent_points: Decimal = Field(default=Decimal(2), ge=0)
    points_per_value_unit: Decimal = Field(
        default=Decimal("0.01"), ge=0, description="Points per currency unit of line value"
    )
    max_value_points: Decimal = Field(default=Decimal(2), ge=0)

    def score(self, entry: Scored) -> Decimal:
        """The weighted score (higher is served first); 0 for every entry in first-come mode."""
        if self.mode == "first_come_first_served":
            return Decimal(0)
        return sum(self._components(entry).values(), Decimal(0)).quantize(_POINTS)

    def sort_key(self, entry: Prioritised) -> tuple[Decimal, datetime, int]:
        return (-self.score(entry), entry.placed_at, entry.sequence)

    def rank(self, entries: Iterable[E]) -> list[E]:
        """Entries in allocation order: the first is served first."""
        return sorted(entries, key=self.sort_key)

    def reason(self, entry: Prioritised, position: int) -> str:
        """Why `entry` is served at `position` (1-based) of the queue, in words."""
        place = f"{ordinal(position)} in the backorder queue"
        placed = f"placed {entry.placed_at.isoformat()}"
        if self.mode == "first_come_first_served":
            return f"{place}, first come first served: {placed}"
        components = self._components(entry)
        parts = [f"{label} +{points.quantize(_POINTS)}" for label, points in components.items() if points]
        detail = f" ({', '.join(parts)})" if parts else ""
        return f"{place} by weighted priority: score {self.score(entry)}{detail}, {placed}"

    def _components(self, entry: Scored) -> dict[str, Decimal]:
        value_points = min(entry.line_value * self.points_per_value_unit, self.max_value_points)
        return {
            f"{entry.tier} tier": self.tier_points.get(entry.tier, Decimal(0)),
            "urgent": self.urgent_points if entry.urgent else Decimal(0),
            f"line value {entry.line_value}": value_points,
        }


FIRST_COME_FIRST_SERVED = PriorityPolicy()
WEIGHTED = PriorityPolicy(mode="weighted")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
