"""backbone.values.replace makes what dataclasses.replace makes, faster, and refuses what it refuses."""

import dataclasses
import pickle
from dataclasses import dataclass, field

import pytest

from backbone.values import replace


@dataclass(frozen=True, slots=True)
class Line:
    line_id: str
    filled: int = 0
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Checked:
    quantity: int

    def __post_init__(self) -> None:
        if self.quantity < 0:
            raise ValueError("quantity must not be negative")


@dataclass(frozen=True)
class Plain:  # no slots: by __init__
    items: list[int] = field(default_factory=list)


def test_a_replaced_value_equals_what_dataclasses_makes_and_leaves_the_original_alone() -> None:
    line = Line("1", 2, ("a",))
    assert replace(line, filled=5) == dataclasses.replace(line, filled=5) == Line("1", 5, ("a",))
    assert replace(line) == line and replace(line) is not line
    assert line == Line("1", 2, ("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        replace(line, filled=1).filled = 3  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(replace(line, filled=7))) == Line("1", 7, ("a",))


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(TypeError, match="Line has no field 'filed'"):
        replace(Line("1"), filed=3)


def test_a_class_that_validates_in_post_init_is_replaced_through_init() -> None:
    assert replace(Checked(1), quantity=2) == Checked(2)
    with pytest.raises(ValueError, match="must not be negative"):
        replace(Checked(1), quantity=-1)
    assert replace(Plain([1]), items=[2]) == Plain([2])
