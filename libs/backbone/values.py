"""`replace` for the frozen, slotted dataclasses that hold the services' states.

`dataclasses.replace` walks the fields, builds keyword arguments and calls `__init__`, which sets every
field through `object.__setattr__`: about 15 us for a 22-field line state, and a decider replaces a few
per event. This one sets the slots of a new instance directly, through code generated once per class
(under a third of the time). A class with `__post_init__` (it validates) or with fields outside
`__init__` gets `dataclasses.replace`, so the result is always what `__init__` would have made.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
Replacer = Callable[[Any, dict[str, Any]], Any]

_REPLACERS: dict[type, Replacer] = {}


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of `obj` with `changes`, as dataclasses.replace makes it."""
    replacer = _REPLACERS.get(type(obj))
    if replacer is None:
        replacer = _REPLACERS[type(obj)] = _replacer(type(obj))
    return replacer(obj, changes)  # type: ignore[no-any-return]


def _by_init(obj: Any, changes: dict[str, Any]) -> Any:
    return dataclasses.replace(obj, **changes)


def _replacer(cls: type) -> Replacer:
    fields = dataclasses.fields(cls)
    slots = cls.__dict__.get("__slots__", ())
    if (
        hasattr(cls, "__post_init__")
        or any(not f.init for f in fields)
        or {f.name for f in fields} - set(slots)
    ):
        return _by_init
    names = [f.name for f in fields]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_unknown": _unknown}
    lines = ["def replace(obj, changes):", "    new = _new(_cls)"]
    for n, name in enumerate(names):
        scope[f"_set{n}"] = cls.__dict__[name].__set__  # the slot's own descriptor: no frozen check
        lines.append(f"    _set{n}(new, changes.pop({name!r}) if {name!r} in changes else obj.{name})")
    lines += ["    if changes:", "        _unknown(_cls, changes)", "    return new"]
    exec("\n".join(lines), scope)  # our own field names (identifiers), as dataclasses itself does
    return scope["replace"]  # type: ignore[no-any-return]


def _unknown(cls: type, changes: dict[str, Any]) -> None:
    raise TypeError(f"{cls.__name__} has no field {', '.join(map(repr, changes))}")
