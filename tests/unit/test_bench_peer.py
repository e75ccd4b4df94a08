"""The eventsourcing peer's own logic (benchmarks/peer.py), without the library or any server."""

import threading
import time

import pytest

from benchmarks.flow import make_order
from benchmarks.peer import Completions, allocate, order_lines, order_status, postgres_env


def test_a_line_reserves_what_there_is_and_backorders_the_rest() -> None:
    assert allocate(3, 10) == (3, 0)
    assert allocate(3, 2) == (2, 1)
    assert allocate(3, 0) == (0, 3)
    assert allocate(2, -1) == (0, 2)  # oversold stock never reserves negative units


def test_the_status_names_what_services_order_calls_it() -> None:
    assert order_status([(1, 0), (3, 0)]) == "ready_to_ship"
    assert order_status([(1, 0), (1, 2)]) == "partially_backordered"
    assert order_status([(0, 1), (0, 3)]) == "backordered"


def test_the_admin_url_becomes_the_librarys_postgres_variables() -> None:
    env = postgres_env("postgresql://postgres:p%40ss%2Fw@127.0.0.1:55432/postgres", "backorder_peer1")
    assert env == {
        "POSTGRES_DBNAME": "backorder_peer1",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "55432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "p@ss/w",
    }
    assert postgres_env("postgresql://me@db/x", "y")["POSTGRES_PORT"] == "5432"
    with pytest.raises(ValueError):
        postgres_env("postgresql:///x", "y")


def test_order_lines_are_plain_json_values() -> None:
    import random

    order = make_order("r", 1, ["A", "B", "C", "D"], random.Random(7))
    lines = order_lines(order)
    assert [line["line_id"] for line in lines] == [line.line_id for line in order.lines]
    assert all(set(line) == {"line_id", "sku", "quantity"} for line in lines)
    assert all(isinstance(line["quantity"], int) for line in lines)


def test_waiting_for_completions_returns_as_soon_as_all_are_decided() -> None:
    completions = Completions()
    threading.Timer(0.05, lambda: [completions.record(o, time.time()) for o in ("a", "b")]).start()
    started = time.monotonic()
    done = completions.wait_for(["a", "b"], timeout=10, failed=lambda: False)
    assert set(done) == {"a", "b"}
    assert time.monotonic() - started < 5


def test_waiting_gives_up_after_the_timeout_or_on_failure_with_what_is_decided() -> None:
    completions = Completions()
    completions.record("a", 1.0)
    assert completions.wait_for(["a", "b"], timeout=0.1, failed=lambda: False) == {"a": 1.0}
    started = time.monotonic()
    assert completions.wait_for(["a", "b"], timeout=30, failed=lambda: True) == {"a": 1.0}
    assert time.monotonic() - started < 5
