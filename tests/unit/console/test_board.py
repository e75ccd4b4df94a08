"""The console's pure parts: how the board is put together from the services' answers, the shared rounds,
its own reader token, its settings and its page (no servers)."""

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from backbone.auth import Role, Verifier, generate_secret, mint_token
from services.console import board
from services.console.app import SharedRounds, create_app
from services.console.gather import Query
from services.console.settings import ConsoleSettings
from services.console.sources import ReaderToken

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ETA = date(2026, 3, 9)


def waiting(sku: str, units: int, lines: int, sourced: bool = True) -> board.WaitingSku:
    return board.WaitingSku(
        sku=sku, waiting_units=units, waiting_lines=lines, on_hand=0, reserved=0, available=0, sourced=sourced
    )


def line(order_id: str, position: int, quantity: int, eta: date | None = ETA) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "line_id": "1",
        "position": position,
        "quantity": quantity,
        "eta": eta,
        "po_id": "PO-1" if eta else None,
        "reason": "purchase order issued" if eta else "no supplier",
    }


def procurement(sku: str, *lines: dict[str, Any], on_order: int = 20) -> board.ProcurementSku:
    po = {
        "po_id": "PO-1",
        "supplier_id": "nordwear",
        "quantity": on_order,
        "outstanding": on_order,
        "received_quantity": 0,
        "confirmed_quantity": None,
        "expected_arrival": ETA,
        "due_date": ETA,
        "expected_complete": ETA,
        "status": "open",
    }
    return board.ProcurementSku.model_validate(
        {
            "sku": sku,
            "on_order": on_order,
            "open_need": 0,
            "sourced": True,
            "open_purchase_orders": [po] if on_order else [],
            "backorders": list(lines),
        }
    )


def stock(sku: str, *queue: tuple[str, int, int]) -> board.Stock:
    return board.Stock(
        sku=sku,
        on_hand=10,
        reserved=10,
        available=0,
        backordered=sum(q for _, _, q in queue),
        waiting_lines=len(queue),
        sourced=True,
        queue=[board.QueueEntry(position=p, order_id=o, line_id="1", quantity=q) for o, p, q in queue],
    )


def backorder(order_id: str, age_days: float, eta: date | None = None) -> board.Backorder:
    return board.Backorder(
        order_id=order_id,
        line_id="1",
        placed_at=NOW - timedelta(days=age_days),
        age_days=age_days,
        eta=eta,
        po_id="PO-1" if eta else None,
    )


def test_rows_carry_procurement_figures_or_none_while_it_is_down() -> None:
    found = [waiting("PARKA", 13, 3), waiting("MITTENS", 1, 1, sourced=False)]
    rows = board.sku_rows(found, {"PARKA": procurement("PARKA", line("o1", 1, 3)), "MITTENS": None})
    assert [(r.sku, r.on_order, r.open_purchase_orders, r.next_eta) for r in rows] == [
        ("PARKA", 20, 1, ETA),
        ("MITTENS", 0, 0, None),  # procurement knows nothing of it: nothing ordered
    ]
    down = board.sku_rows(found, None)
    assert [(r.on_order, r.open_purchase_orders, r.next_eta) for r in down] == [(None, None, None)] * 2
    assert [r.waiting_units for r in down] == [13, 1]


def test_the_queue_follows_inventory_with_procurements_etas_and_the_order_services_ages() -> None:
    inventory = stock("PARKA", ("o2", 1, 3), ("o3", 2, 4))
    plan = procurement("PARKA", line("o2", 1, 3), line("o3", 2, 4, eta=None))
    ages = [backorder("o3", 0.1), backorder("o2", 0.8)]
    queue = board.queue_lines(inventory, plan, ages)
    assert queue is not None
    assert [(q.order_id, q.position, q.quantity, q.eta, q.eta_reason, q.waited_days) for q in queue] == [
        ("o2", 1, 3, ETA, "purchase order issued", 0.8),
        ("o3", 2, 4, None, "no supplier", 0.1),
    ]
    # Inventory down: procurement's copy of the queue; procurement down: the ETAs the order service heard.
    assert [q.order_id for q in board.queue_lines(None, plan, ages) or []] == ["o2", "o3"]
    told = board.queue_lines(inventory, None, [backorder("o2", 0.8, eta=ETA)])
    assert told is not None and [(q.eta, q.po_id, q.waited_days) for q in told] == [
        (ETA, "PO-1", 0.8),
        (None, None, None),
    ]
    assert board.queue_lines(None, None, ages) is None


def test_a_sku_procurement_does_not_know_has_no_purchase_orders_but_one_it_cannot_ask_is_unknown() -> None:
    unknown = board.sku_detail("HAT", None, None, None, None, None, procurement_answered=True)
    assert (unknown.purchase_orders, unknown.on_order, unknown.queue) == ([], 0, None)
    down = board.sku_detail("HAT", stock("HAT"), None, [], None, None, procurement_answered=False)
    assert (down.purchase_orders, down.on_order, down.queue) == (None, None, [])


def failure(n: int, minutes_ago: int) -> board.Failure:
    return board.Failure(
        notification_id=f"n{n}",
        kind="backordered",
        order_id=f"o{n}",
        sku="PARKA",
        channel="email",
        attempts=1,
        last_error="SMTPConnectError",
        updated_at=NOW - timedelta(minutes=minutes_ago),
    )


def test_failures_show_the_latest_and_say_when_there_may_be_more() -> None:
    found = [failure(1, 30), failure(2, 5), failure(3, 10)]
    shown = board.failures(found, limit=3, shown=2)
    assert (shown.count, shown.more, [f.notification_id for f in shown.recent]) == (3, True, ["n2", "n3"])
    assert board.failures(found[:1], limit=3, shown=2).more is False


def test_totals_sum_the_window_and_stay_unknown_for_a_source_that_did_not_answer() -> None:
    def point(hour: int, ordered: int, reserved: int) -> board.RatePoint:
        start = NOW + timedelta(hours=hour)
        return board.RatePoint(
            start=start,
            end=start + timedelta(hours=1),
            lines=1,
            ordered_units=ordered,
            reserved_at_placement_units=reserved,
            backordered_units=ordered - reserved,
            backorder_rate_percent=board.percent(ordered - reserved, ordered),
            fill_rate_percent=board.percent(reserved, ordered),
        )

    rates = board.Rates(bucket="hour", sku=None, points=[point(0, 5, 2), point(1, 0, 0), point(2, 4, 0)])
    dead = [
        board.DeadLetters(topic=t, dead_letter_topic=f"{t}.dlq", exists=True, partitions=4, messages=n)
        for t, n in (("orders", 0), ("fulfilment", 3))
    ]
    unsourced = [board.UnsourcedSku(sku="MITTENS", waiting_lines=1, waiting_units=2)]
    totals = board.totals(rates, None, board.failures([failure(1, 1)], 10, 5), dead, unsourced)
    assert (totals.backorder_rate_percent, totals.fill_rate_percent) == (77.78, 22.22)
    assert (totals.failed_notifications, totals.dead_letters) == (1, 3)
    assert (totals.unsourced_skus, totals.unsourced_units) == (1, 2)
    assert (totals.waiting_units, totals.waiting_lines, totals.oldest_placed_at) == (None, None, None)
    nothing = board.totals(None, None, None, None, None)
    assert set(nothing.model_dump().values()) == {None}


async def test_pages_asking_the_same_share_one_round_until_it_is_old() -> None:
    rounds = SharedRounds(ttl=60.0)
    calls: list[Query] = []
    release = asyncio.Event()

    async def gather(query: Query) -> Any:
        calls.append(query)
        await release.wait()
        return len(calls)

    first = asyncio.ensure_future(rounds.get(Query(top=5), gather))
    second = asyncio.ensure_future(rounds.get(Query(top=5), gather))
    other = asyncio.ensure_future(rounds.get(Query(top=10), gather))
    await asyncio.sleep(0)
    release.set()
    assert await first == await second == 1 and await other == 2
    assert await rounds.get(Query(top=5), gather) == 1  # still fresh
    assert calls == [Query(top=5), Query(top=10)]

    failing = SharedRounds(ttl=60.0)

    async def broken(query: Query) -> Any:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await failing.get(Query(), broken)
    assert await failing.get(Query(), gather) == 3  # a failed round is not kept


async def test_the_console_calls_with_a_short_lived_reader_token_renewed_at_half_life(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = generate_secret()
    clock = [time.time() - 200]  # the renewed token is issued (iat) before the real now
    monkeypatch.setattr("services.console.sources.time.time", lambda: clock[0])
    token = ReaderToken(secret, 300, issuer="backorder", audience="backorder")
    first = token.current()
    clock[0] += 149
    assert token.current() == first
    clock[0] += 2
    renewed = token.current()
    assert renewed != first
    principal = await Verifier(secret=secret, jwks_url=None).verify(renewed)
    assert (principal.subject, principal.roles) == ("console", frozenset({Role.READER}))


def test_the_console_needs_a_secret_to_sign_its_own_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTH_TOKEN_SECRET", raising=False)
    with pytest.raises(ValidationError, match="AUTH_TOKEN_SECRET"):
        ConsoleSettings(auth_jwks_url="https://idp.example/keys")
    settings = ConsoleSettings(auth_token_secret=generate_secret(), console_order_url="http://order:8000/")
    assert settings.service_urls()["order"] == "http://order:8000"
    assert settings.http_port == 8005


async def test_the_page_loads_without_a_token_and_the_figures_need_one() -> None:
    secret = generate_secret()
    settings = ConsoleSettings(auth_token_secret=secret, kafka_bootstrap_servers="127.0.0.1:1")
    transport = httpx.ASGITransport(app=create_app(settings))  # no lifespan: nothing is gathered here
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert "Token needed" in page.text and "/static/board.js?v=" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert page.headers["referrer-policy"] == "no-referrer"
        assert (await client.get("/static/board.js")).status_code == 200
        assert (await client.get("/static/charts.js")).status_code == 200
        assert (await client.get("/health")).json() == {"status": "ok", "service": "console"}
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/health/ready")).status_code == 503  # not started: gathers nothing yet
        assert "backorder_console_round_seconds" in (await client.get("/metrics")).text
        refused = await client.get("/api/board")
        assert refused.status_code == 401 and refused.json() == {"detail": "this needs a bearer token"}
        expired = mint_token(secret, "x", [Role.READER], ttl_seconds=-120)
        assert (
            await client.get("/api/board", headers={"Authorization": f"Bearer {expired}"})
        ).status_code == 401
        reader = {"Authorization": f"Bearer {mint_token(secret, 'x', [Role.READER])}"}
        assert (await client.get("/api/board", params={"top": 0}, headers=reader)).status_code == 422
        assert (await client.get("/api/board", params={"bucket": "week"}, headers=reader)).status_code == 422
