"""Substitutes in inventory: the audited list, and a substitution's two commands (the replaced line gives up
its waiting units, then the new line is reserved, told what was given up)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from backbone.contracts.events import (
    LineQuantity,
    OrderLine,
    OrderLineSubstituted,
    SkuSubstitutesChanged,
    StockLevelChanged,
    StockReleased,
    StockReserved,
    StockShort,
)
from services.inventory.domain import (
    InvalidCommand,
    SetSubstitutes,
    allocation_order,
    give_up_waiting_command,
    reserve_substitute_command,
    units_given_up,
)
from tests.unit.inventory.harness import SkuHarness, at, of_type

PLACED = at(0)


def substitution(quantity: int = 3, *, old: str = "JACKET-M", new: str = "JACKET-L") -> OrderLineSubstituted:
    return OrderLineSubstituted(
        order_id="o-1",
        substitution_id="sub-1",
        replaced=LineQuantity(line_id="1", sku=old, quantity=quantity),
        line=OrderLine(line_id="1-s1", sku=new, quantity=quantity, unit_price=Decimal("40.00")),
        tier="gold",
        urgent=False,
        placed_at=PLACED,
        substituted_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    )


def set_substitutes(sku: SkuHarness, *substitutes: str) -> list:  # type: ignore[type-arg]
    return sku.run(SetSubstitutes(sku=sku.sku, substitutes=list(substitutes), actor="buyer"))


def test_the_list_is_audited_and_recorded_once() -> None:
    sku = SkuHarness()
    assert set_substitutes(sku, "JACKET-L", "JACKET-S") == [
        SkuSubstitutesChanged(sku="JACKET-M", substitutes=["JACKET-L", "JACKET-S"], actor="buyer")
    ]
    assert sku.state.substitutes == ("JACKET-L", "JACKET-S")
    assert set_substitutes(sku, "JACKET-L", "JACKET-S") == []  # the same list: nothing to record
    [cleared] = set_substitutes(sku)
    assert isinstance(cleared, SkuSubstitutesChanged) and cleared.substitutes == []
    assert sku.rebuilt() == sku.state
    assert of_type(sku.log, StockLevelChanged) == []  # no figure changed


@pytest.mark.parametrize(
    ("substitutes", "message"),
    [(["JACKET-L", "JACKET-L"], "unique"), (["JACKET-M"], "its own substitute")],
)
def test_a_bad_list_is_refused(substitutes: list[str], message: str) -> None:
    sku = SkuHarness()
    with pytest.raises(InvalidCommand, match=message):
        sku.run(SetSubstitutes(sku=sku.sku, substitutes=substitutes, actor="buyer"))
    with pytest.raises(ValidationError):
        SetSubstitutes(sku=sku.sku, substitutes=[f"S{n}" for n in range(21)], actor="buyer")


def test_the_contract_refuses_what_is_no_switch() -> None:
    with pytest.raises(ValidationError, match="another SKU"):
        substitution(old="A", new="A")
    with pytest.raises(ValidationError, match="own substitute"):
        SkuSubstitutesChanged(sku="A", substitutes=["A"], actor="x")
    with pytest.raises(ValidationError, match="exactly the units"):
        OrderLineSubstituted(
            **{
                **substitution().model_dump(),
                "line": OrderLine(line_id="1-s1", sku="B", quantity=2, unit_price=Decimal(1)),
            }
        )


def test_the_replaced_line_gives_up_its_waiting_units_only() -> None:
    old = SkuHarness()
    old.receive(2)
    old.reserve("o-1", 5)  # 2 reserved, 3 wait
    events = old.run(give_up_waiting_command(substitution(3)))
    [release] = of_type(events, StockReleased)
    assert (release.dropped_backordered, release.released_reserved) == (3, 0)
    assert release.substitution_id == "sub-1" and release.reason is None
    assert units_given_up(substitution(3), events) == 3
    assert old.state.reserved == 2 and old.state.backordered == 0


def test_a_fill_that_came_first_is_kept_and_gives_up_less() -> None:
    old = SkuHarness()
    old.reserve("o-1", 3)
    old.receive(1)  # one of the three waiting units is filled before the switch arrives
    events = old.run(give_up_waiting_command(substitution(3)))
    assert units_given_up(substitution(3), events) == 2
    assert old.state.reserved == 1


def test_the_new_line_is_reserved_like_a_line_of_the_order() -> None:
    new = SkuHarness(sku="JACKET-L")
    new.receive(5)
    events = new.run(reserve_substitute_command(substitution(3, new="JACKET-L"), given_up=3))
    assert of_type(events, StockReserved) == [
        StockReserved(order_id="o-1", line_id="1-s1", sku="JACKET-L", quantity=3)
    ]
    assert new.state.available == 2
    assert of_type(events, StockLevelChanged)[-1].available == 2  # a rare command: its figures are told
    assert new.rebuilt() == new.state


def test_a_substitute_that_ran_out_backorders_whatever_its_policy() -> None:
    new = SkuHarness(sku="JACKET-L")
    new.receive(1)
    new.set_policy("deny")
    events = new.run(reserve_substitute_command(substitution(3, new="JACKET-L"), given_up=3))
    [shortfall] = of_type(events, StockShort)
    assert (shortfall.demanded, shortfall.available, shortfall.disposition) == (3, 1, "backordered")
    assert new.state.backordered == 2


def test_the_new_line_ranks_from_the_orders_placement() -> None:
    new = SkuHarness(sku="JACKET-L")
    new.reserve("o-later", 2, minute=30)  # placed half an hour after o-1, waiting already
    new.run(reserve_substitute_command(substitution(3, new="JACKET-L"), given_up=3))
    assert [e.order_id for e in allocation_order(new.state)] == ["o-1", "o-later"]


def test_an_unknown_substitute_is_backordered_not_rejected() -> None:
    new = SkuHarness(sku="NEVER-SEEN", unknown_sku="reject")
    events = new.run(reserve_substitute_command(substitution(2, new="NEVER-SEEN"), given_up=2))
    [shortfall] = of_type(events, StockShort)
    assert shortfall.disposition == "backordered" and new.state.backordered == 2


def test_what_the_replaced_line_could_not_give_up_is_given_back_at_once() -> None:
    new = SkuHarness(sku="JACKET-L")
    new.receive(1)
    events = new.run(reserve_substitute_command(substitution(3, new="JACKET-L"), given_up=1))
    [release] = of_type(events, StockReleased)
    # 1 reserved, 2 waited: the 2 not given up go back, waiting units first.
    assert (release.dropped_backordered, release.released_reserved) == (2, 0)
    assert release.substitution_id == "sub-1"
    assert new.state.reserved == 1 and new.state.backordered == 0
    nothing = SkuHarness(sku="JACKET-L")
    nothing.receive(3)
    events = nothing.run(reserve_substitute_command(substitution(3, new="JACKET-L"), given_up=0))
    [release] = of_type(events, StockReleased)
    assert release.released_reserved == 3 and nothing.state.available == 3


def test_a_repeated_substitution_reserves_and_gives_back_nothing() -> None:
    new = SkuHarness(sku="JACKET-L")
    new.receive(5)
    command = reserve_substitute_command(substitution(3, new="JACKET-L"), given_up=3)
    new.run(command)
    assert new.run(command) == []
    assert new.run(reserve_substitute_command(substitution(3, new="JACKET-L"), given_up=0)) == []
    assert new.state.reserved == 3
