"""Argument checks of procurement's pure arithmetic (forecast.py, reliability.py): a ValueError naming
the argument, instead of a bare TypeError deep in the arithmetic or a silently wrong figure."""

from datetime import date, datetime


def check_date(name: str, value: object) -> date:
    # datetime is a date subclass, but comparing or subtracting it with a date raises a bare TypeError.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise ValueError(f"{name} must be a date (not a datetime), got {value!r}")
    return value


def check_int(name: str, value: object, minimum: int | None = None) -> int:
    """A whole number (bool is not one), at least `minimum` when given."""
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(f"{name} must be an integer{bound}, got {value!r}")
    return value
