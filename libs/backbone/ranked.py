"""A persistent ranked map: ids kept in rank order with the units each holds (a waiting queue as a value).

A SKU that sells out has tens of thousands of lines waiting, and a decider's state must stay a value
(decide and evolve are pure; the repository caches states). Copying a dict or a list on every event would
make each change cost O(queue). Here an update copies one block of at most 2 x BLOCK entries and the
tuples of per-block summaries (one entry per block), all C-level tuple slices; the rest is shared with
the previous version. Looking an id up is O(log n) (a hash trie), finding its place a bisection.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Hashable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from rpds import HashTrieMap

BLOCK = 256  # entries per block after a split; a block splits past 2 x BLOCK

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")  # a rank: totally ordered, unique per id
V = TypeVar("V")

# In a block an entry is (rank, id, units): ranks are unique, so tuples compare by rank alone.
_Entry = tuple[Any, Any, int]
_Block = tuple[_Entry, ...]


class RankedMap(Generic[K, R, V]):
    """Ids in ascending rank order, each with a value and a number of units (kept summed)."""

    __slots__ = ("_block_units", "_blocks", "_entries", "_maxes", "_units")

    def __init__(self) -> None:
        self._entries: HashTrieMap = HashTrieMap()  # id -> (rank, value, units)
        self._blocks: tuple[_Block, ...] = ()
        self._maxes: tuple[Any, ...] = ()  # the last (largest) rank of each block
        self._block_units: tuple[int, ...] = ()
        self._units = 0

    @classmethod
    def of(cls, items: Iterable[tuple[K, R, V, int]]) -> RankedMap[K, R, V]:
        """Build from (id, rank, value, units) in any order, in O(n log n)."""
        ranked = sorted(items, key=lambda item: item[1])
        new = cls()
        new._entries = HashTrieMap({i: (r, v, u) for i, r, v, u in ranked})
        if len(new._entries) != len(ranked):
            raise ValueError("ids must be unique")
        entries = [(r, i, u) for i, r, _, u in ranked]
        blocks = tuple(tuple(entries[s : s + BLOCK]) for s in range(0, len(entries), BLOCK))
        block_units = tuple(sum(e[2] for e in b) for b in blocks)
        new._set_blocks(blocks, tuple(b[-1][0] for b in blocks), block_units, sum(block_units))
        if len({e[0] for e in entries}) != len(entries):
            raise ValueError("ranks must be unique")
        return new

    # --- reading ---------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return self._units > 0 or len(self._entries) > 0

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def units(self) -> int:
        """Units of all entries."""
        return self._units

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def rank(self, key: K) -> R:
        return self._entries[key][0]

    def units_of(self, key: K) -> int:
        return self._entries[key][2]

    def position(self, key: K) -> int:
        """0-based place of `key` in rank order."""
        b, i = self._locate(self._entries[key][0])
        return sum(len(block) for block in self._blocks[:b]) + i

    def units_ahead(self, key: K) -> int:
        """Units of the entries ranked before `key`."""
        b, i = self._locate(self._entries[key][0])
        return sum(self._block_units[:b]) + sum(e[2] for e in self._blocks[b][:i])

    def locate_unit(self, unit: int) -> tuple[int, int] | None:
        """(0-based position, units ahead of it) of the entry that holds the `unit`-th unit counted from
        the front (1-based); None past the last unit."""
        if unit < 1 or unit > self._units:
            return None
        position = ahead = 0
        for block, block_units in zip(self._blocks, self._block_units, strict=True):
            if ahead + block_units < unit:
                ahead += block_units
                position += len(block)
                continue
            for _, _, units in block:
                if ahead + units >= unit:
                    return position, ahead
                ahead += units
                position += 1
        raise AssertionError("block units do not add up")  # unreachable while the sums are right

    def items(self, start: int = 0) -> Iterator[tuple[K, V, int]]:
        """(id, value, units) in rank order, from the 0-based position `start` on."""
        skipped = 0
        for block in self._blocks:
            if skipped + len(block) <= start:
                skipped += len(block)
                continue
            for _, key, units in block[max(0, start - skipped) :]:
                yield key, self._entries[key][1], units
            skipped += len(block)

    def first(self) -> tuple[K, V, int] | None:
        return next(self.items(), None)

    def __iter__(self) -> Iterator[K]:
        return (key for key, _, _ in self.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RankedMap):
            return NotImplemented
        return self._units == other._units and len(self) == len(other) and self._listed() == other._listed()

    def __hash__(self) -> int:
        raise TypeError("RankedMap is not hashable")

    def __repr__(self) -> str:
        return f"RankedMap({self._listed()!r})"

    def _listed(self) -> list[tuple[Any, Any, Any, int]]:
        return [(k, self._entries[k][0], v, u) for k, v, u in self.items()]

    # --- persistent updates ----------------------------------------------------------------------------

    def insert(self, key: K, rank: R, value: V, units: int) -> RankedMap[K, R, V]:
        if key in self._entries:
            raise KeyError(f"{key!r} is in the map already")
        blocks, maxes, block_units = self._blocks, self._maxes, self._block_units
        entry = (rank, key, units)
        if not blocks:
            new = self._derived(((entry,),), (rank,), (units,), self._units + units)
        else:
            b = min(bisect_left(maxes, rank), len(blocks) - 1)
            block = blocks[b]
            i = bisect_left(block, (rank,))
            if i < len(block) and block[i][0] == rank:
                raise ValueError(f"rank {rank!r} is taken")
            grown = (*block[:i], entry, *block[i:])
            units_b = block_units[b] + units
            if len(grown) > 2 * BLOCK:
                half = len(grown) // 2
                left, right = grown[:half], grown[half:]
                left_units = sum(e[2] for e in left)
                new = self._derived(
                    (*blocks[:b], left, right, *blocks[b + 1 :]),
                    (*maxes[:b], left[-1][0], right[-1][0], *maxes[b + 1 :]),
                    (*block_units[:b], left_units, units_b - left_units, *block_units[b + 1 :]),
                    self._units + units,
                )
            else:
                new = self._derived(
                    (*blocks[:b], grown, *blocks[b + 1 :]),
                    (*maxes[:b], grown[-1][0], *maxes[b + 1 :]),
                    (*block_units[:b], units_b, *block_units[b + 1 :]),
                    self._units + units,
                )
        new._entries = self._entries.insert(key, (rank, value, units))
        return new

    def replace(self, key: K, value: V, units: int) -> RankedMap[K, R, V]:
        """The same id at the same rank with a new value and units."""
        rank, _, old_units = self._entries[key]
        b, i = self._locate(rank)
        block = self._blocks[b]
        changed = (*block[:i], (rank, key, units), *block[i + 1 :])
        delta = units - old_units
        new = self._derived(
            (*self._blocks[:b], changed, *self._blocks[b + 1 :]),
            self._maxes,
            (*self._block_units[:b], self._block_units[b] + delta, *self._block_units[b + 1 :]),
            self._units + delta,
        )
        new._entries = self._entries.insert(key, (rank, value, units))
        return new

    def remove(self, key: K) -> RankedMap[K, R, V]:
        rank, _, units = self._entries[key]
        b, i = self._locate(rank)
        block = self._blocks[b]
        shrunk = (*block[:i], *block[i + 1 :])
        if shrunk:
            new = self._derived(
                (*self._blocks[:b], shrunk, *self._blocks[b + 1 :]),
                (*self._maxes[:b], shrunk[-1][0], *self._maxes[b + 1 :]),
                (*self._block_units[:b], self._block_units[b] - units, *self._block_units[b + 1 :]),
                self._units - units,
            )
        else:
            new = self._derived(
                (*self._blocks[:b], *self._blocks[b + 1 :]),
                (*self._maxes[:b], *self._maxes[b + 1 :]),
                (*self._block_units[:b], *self._block_units[b + 1 :]),
                self._units - units,
            )
        new._entries = self._entries.remove(key)
        return new

    # --- internals ---------------------------------------------------------------------------------------

    def _locate(self, rank: Any) -> tuple[int, int]:
        b = bisect_left(self._maxes, rank)
        return b, bisect_left(self._blocks[b], (rank,))

    def _derived(
        self, blocks: tuple[_Block, ...], maxes: tuple[Any, ...], block_units: tuple[int, ...], units: int
    ) -> RankedMap[K, R, V]:
        new: RankedMap[K, R, V] = RankedMap.__new__(RankedMap)
        new._set_blocks(blocks, maxes, block_units, units)
        return new

    def _set_blocks(
        self, blocks: tuple[_Block, ...], maxes: tuple[Any, ...], block_units: tuple[int, ...], units: int
    ) -> None:
        # `units` is kept by each update (old total ± the change), not summed again over every block.
        self._blocks, self._maxes, self._block_units, self._units = blocks, maxes, block_units, units

    # Pickled (for snapshots) as its entries in order; rebuilt in O(n).
    def __getstate__(self) -> list[tuple[Any, Any, Any, int]]:
        return self._listed()

    def __setstate__(self, state: list[tuple[Any, Any, Any, int]]) -> None:
        built = RankedMap.of(state)
        self._entries, self._units = built._entries, built._units
        self._blocks, self._maxes, self._block_units = built._blocks, built._maxes, built._block_units
