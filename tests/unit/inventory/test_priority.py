from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pytest

from backbone.contracts.events import CustomerTier
from services.inventory.priority import FIRST_COME_FIRST_SERVED, WEIGHTED, PriorityPolicy, ordinal
from tests.unit.inventory.harness import at


@dataclass(frozen=True)
class Waiting:
    name: str
    placed_at: datetime
    sequence: int
    tier: CustomerTier = "standard"
    urgent: bool = False
    line_value: Decimal = Decimal(0)


def names(entries: list[Waiting]) -> list[str]:
    return [e.name for e in entries]


def test_first_come_first_served_ranks_by_placement_time_then_arrival() -> None:
    late = Waiting("late", at(5), sequence=1, tier="platinum", urgent=True)
    early = Waiting("early", at(1), sequence=3)
    tie_first = Waiting("tie-first", at(3), sequence=2)
    tie_second = Waiting("tie-second", at(3), sequence=4)

    ranked = FIRST_COME_FIRST_SERVED.rank([late, tie_second, early, tie_first])

    assert names(ranked) == ["early", "tie-first", "tie-second", "late"]


def test_weighted_ranks_by_tier_urgency_and_value_with_placement_time_breaking_ties() -> None:
    standard = Waiting("standard", at(0), 1)
    silver = Waiting("silver", at(1), 2, tier="silver")
    urgent = Waiting("urgent", at(2), 3, urgent=True)  # 2 points, like gold
    gold = Waiting("gold", at(3), 4, tier="gold")
    platinum = Waiting("platinum", at(4), 5, tier="platinum")

    ranked = WEIGHTED.rank([standard, silver, urgent, gold, platinum])

    assert names(ranked) == ["platinum", "urgent", "gold", "silver", "standard"]


def test_value_points_are_capped_so_that_one_big_order_cannot_outrank_everything() -> None:
    huge = Waiting("huge", at(0), 1, line_value=Decimal("1000000.00"))
    platinum = Waiting("platinum", at(1), 2, tier="platinum")

    assert WEIGHTED.score(huge) == Decimal("2.00")
    assert names(WEIGHTED.rank([huge, platinum])) == ["platinum", "huge"]


def test_the_reason_names_the_place_and_what_earned_it() -> None:
    entry = Waiting("a", at(0), 1, tier="silver", urgent=True, line_value=Decimal("25.00"))

    assert FIRST_COME_FIRST_SERVED.reason(entry, 2) == (
        "2nd in the backorder queue, first come first served: placed 2026-03-01T09:00:00+00:00"
    )
    assert WEIGHTED.reason(entry, 1) == (
        "1st in the backorder queue by weighted priority: score 3.25 "
        "(silver tier +1.00, urgent +2.00, line value 25.00 +0.25), placed 2026-03-01T09:00:00+00:00"
    )


def test_a_policy_can_be_read_from_configuration() -> None:
    policy = PriorityPolicy.model_validate(
        {"mode": "weighted", "tier_points": {"gold": "10"}, "urgent_points": "0.5"}
    )
    gold = Waiting("gold", at(1), 1, tier="gold")
    urgent = Waiting("urgent", at(0), 2, urgent=True)

    assert names(policy.rank([urgent, gold])) == ["gold", "urgent"]
    assert policy.score(Waiting("silver", at(0), 3, tier="silver")) == 0  # a tier left out scores 0


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"), (21, "21st")],
)
def test_ordinals(n: int, expected: str) -> None:
    assert ordinal(n) == expected
