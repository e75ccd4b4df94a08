"""RankedMap against a plain sorted list, over random operations (inserts, replaces, removes, splits)."""

import pickle
import random

import pytest

from backbone import ranked
from backbone.ranked import RankedMap


class Model:
    """The obvious O(n) version: a list of (rank, key, value, units) kept sorted."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, str, int]] = []

    def insert(self, key: str, rank: int, value: str, units: int) -> None:
        self.rows.append((rank, key, value, units))
        self.rows.sort()

    def replace(self, key: str, value: str, units: int) -> None:
        self.rows = [(r, k, value, units) if k == key else (r, k, v, u) for r, k, v, u in self.rows]

    def remove(self, key: str) -> None:
        self.rows = [row for row in self.rows if row[1] != key]


def check(m: RankedMap[str, int, str], model: Model) -> None:
    assert list(m.items()) == [(k, v, u) for _, k, v, u in model.rows]
    assert len(m) == len(model.rows) and m.units == sum(u for *_, u in model.rows)
    ahead = 0
    for position, (rank, key, value, units) in enumerate(model.rows):
        assert (m.position(key), m.units_ahead(key), m.rank(key), m.get(key)) == (
            position,
            ahead,
            rank,
            value,
        )
        assert m.locate_unit(ahead + 1) == (position, ahead)
        assert m.locate_unit(ahead + units) == (position, ahead)
        ahead += units
    assert m.locate_unit(ahead + 1) is None and m.locate_unit(0) is None


@pytest.mark.parametrize("seed", range(4))
def test_random_operations_match_a_sorted_list(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranked, "BLOCK", 4)  # small blocks: many splits and emptied blocks
    rng = random.Random(seed)
    m: RankedMap[str, int, str] = RankedMap()
    model, versions = Model(), []
    ranks = rng.sample(range(10_000), 600)
    for step in range(600):
        keys = [k for _, k, _, _ in model.rows]
        op = rng.random()
        if op < 0.55 or not keys:
            key = f"k{step}"
            m = m.insert(key, ranks[step], f"v{step}", rng.randint(1, 5))
            model.insert(key, ranks[step], f"v{step}", m.units_of(key))
        elif op < 0.8:
            key, units = rng.choice(keys), rng.randint(1, 5)
            m = m.replace(key, f"r{step}", units)
            model.replace(key, f"r{step}", units)
        else:
            key = rng.choice(keys)
            m = m.remove(key)
            model.remove(key)
        versions.append((m, list(model.rows)))
        if step % 50 == 0:
            check(m, model)
    check(m, model)
    # Persistence: every older version still holds exactly what it held.
    for version, rows in versions[::37]:
        assert list(version.items()) == [(k, v, u) for _, k, v, u in rows]


def test_pickles_and_compares_by_content() -> None:
    m = RankedMap.of([("b", 2, "B", 3), ("a", 1, "A", 1)])
    assert list(m) == ["a", "b"]
    assert pickle.loads(pickle.dumps(m)) == m
    assert m.remove("a") != m and m.remove("a") == RankedMap.of([("b", 2, "B", 3)])


def test_refuses_a_duplicate_id_or_rank() -> None:
    m = RankedMap.of([("a", 1, "A", 1)])
    with pytest.raises(KeyError):
        m.insert("a", 2, "A", 1)
    with pytest.raises(ValueError):
        m.insert("b", 1, "B", 1)
