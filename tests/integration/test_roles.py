"""Who may call what, against the real services: every guarded route of every service, called with a
token of each role (the allowed ones get the route's usual answer, the others 403 saying which roles it
needs), without a token and with broken ones (401), and the open routes without any. The table here is
written down independently of the code: a route the code adds, or guards differently, fails the test
(the services' OpenAPI documents list each route's roles).

Beyond the boundaries: the audit actor is the token's subject (a body naming one is refused), customer
names and addresses reach only support and staff, and a shop's checkout token acts for its shop only.
"""

import itertools
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from backbone.auth import ALL_ROLES, Role, mint_token
from backbone.contracts import new_envelope
from backbone.contracts.events import SkuSubstitutesChanged
from backbone.settings import ServiceSettings
from backbone.testing.fixtures import publish, unique_name
from backbone.testing.service import bearer, secret_of, service_settings, serving, token_for
from backbone.testing.waiting import eventually
from services.edi.app import build_service as edi_service
from services.edi.settings import EdiSettings
from tests.integration.inventory import harness as inventory
from tests.integration.notifier import harness as notifier
from tests.integration.order import harness as order
from tests.integration.procurement import harness as procurement

pytestmark = pytest.mark.integration

STAFF, SUPPORT, CHECKOUT, READER, SUPPLIER = (
    Role.STAFF,
    Role.SUPPORT,
    Role.CHECKOUT,
    Role.READER,
    Role.SUPPLIER,
)
VIEWS = frozenset({STAFF, SUPPORT, READER})  # the read-only views
OPEN = ("/health", "/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs")
NOWHERE = 987654321  # no parked event has this position: an allowed operator gets 404
_numbers = itertools.count(1)

Json = Callable[[int], Any]
Prepare = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """One route: `operation` as the OpenAPI document names it ("POST /orders/{order_id}/cancel"),
    `path` the one called, where "{n}" becomes a fresh number per call (so a command is never a retry
    of an earlier one). An allowed role gets `ok`; `prepare(n)` makes what that call needs first."""

    operation: str
    path: str
    allowed: frozenset[Role]
    ok: int = 200
    json: Json | None = None
    prepare: Prepare | None = None


PARKED_EVENTS = [
    Route("GET /outbox/parked", "/outbox/parked", VIEWS),
    Route("POST /outbox/parked/{position}/retry", f"/outbox/parked/{NOWHERE}/retry", frozenset({STAFF}), 404),
    Route(
        "POST /outbox/parked/{position}/discard",
        f"/outbox/parked/{NOWHERE}/discard",
        frozenset({STAFF}),
        404,
        json=lambda n: {"note": "a poison event"},
    ),
]


@dataclass
class Findings:
    wrong: list[str] = field(default_factory=list)

    def expect(self, what: str, response: httpx.Response, status: int, detail: str | None = None) -> None:
        if response.status_code != status:
            self.wrong.append(f"{what}: expected {status}, got {response.status_code} {response.text[:300]}")
        elif detail is not None and detail not in response.text:
            self.wrong.append(f"{what}: expected {detail!r} in {response.text[:300]}")

    def check(self) -> None:
        assert not self.wrong, "\n".join(self.wrong)


async def check_boundaries(http: httpx.AsyncClient, config: ServiceSettings, routes: Sequence[Route]) -> None:
    """Every route x every role, every route without or with a broken token, the open routes."""
    found = Findings()
    async with httpx.AsyncClient(base_url=http.base_url) as anonymous:
        document = (await anonymous.get("/openapi.json")).json()
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        guarded = {
            f"{method.upper()} {path}": set(operation["x-roles"])
            for path, operations in document["paths"].items()
            for method, operation in operations.items()
            if operation.get("security")
        }
        assert guarded == {r.operation: {str(role) for role in r.allowed} for r in routes}, (
            "the service's routes or their roles differ from this table"
        )
        for path in OPEN:
            response = await anonymous.get(path)
            if response.status_code in (401, 403):
                found.wrong.append(f"GET {path} is not open: {response.status_code}")

        broken = {
            "no token": {},
            "not a JWT": bearer("not-a-jwt"),
            "another scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
            "expired": bearer(mint_token(secret_of(config), "late", ALL_ROLES, ttl_seconds=-120)),
            "another secret": bearer(mint_token("x" * 40, "forger", ALL_ROLES)),
            "another audience": bearer(
                mint_token(secret_of(config), "elsewhere", ALL_ROLES, audience="other")
            ),
        }
        for route in routes:
            method, _ = route.operation.split(" ", 1)
            for role in Role:
                n = next(_numbers)
                allowed = role in route.allowed
                if allowed and route.prepare is not None:
                    await route.prepare(n)
                response = await anonymous.request(
                    method,
                    route.path.format(n=n),
                    json=route.json(n) if route.json else None,
                    headers=bearer(token_for(config, role, subject=f"{role}-1")),
                )
                if allowed:
                    found.expect(f"{route.operation} as {role}", response, route.ok)
                else:
                    roles = ", ".join(r for r in Role if r in route.allowed)
                    message = f"this needs one of the roles {roles}; your token has {role}"
                    found.expect(f"{route.operation} as {role}", response, 403, message)
            for name, headers in broken.items():
                response = await anonymous.request(
                    method,
                    route.path.format(n=0),
                    json=route.json(0) if route.json else None,
                    headers=headers,
                )
                found.expect(f"{route.operation} with {name}", response, 401)
                if response.status_code == 401:
                    assert response.headers["WWW-Authenticate"].startswith("Bearer"), response.headers
                    assert isinstance(response.json()["detail"], str)
    found.check()


def as_role(config: ServiceSettings, *roles: Role, subject: str = "someone", shop: str | None = None) -> Any:
    return bearer(token_for(config, *roles, subject=subject, shop=shop))


async def payload_of(database_url: str, event_type: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        body = await conn.fetchval(
            "SELECT body::text FROM event_store WHERE event_type = $1 ORDER BY global_position DESC LIMIT 1",
            event_type,
        )
    finally:
        await conn.close()
    assert body is not None, f"no {event_type} stored"
    return dict(json.loads(body)["payload"])


# --- order -------------------------------------------------------------------------------------------------


async def test_order_service_roles(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku = unique_name("LAMP")
    config = order.settings(database_url, kafka_bootstrap, topic_prefix)

    def placed(order_id: str, shop_id: str = "default") -> dict[str, Any]:
        body = order.order_json(order.order(order_id, ("1", sku, 3, "10.00")))
        return {**body, "shop_id": shop_id, "customer": {**body["customer"], "name": "Ada Lovelace"}}

    async with order.serving(config) as http:

        async def place(n: int) -> None:
            response = await http.post("/orders", json=placed(f"R{n}"))
            assert response.status_code == 202, response.text

        async def place_and_backorder(n: int) -> None:
            await place(n)
            short = order.short(f"R{n}", "1", sku, demanded=3, available=1)
            await publish(producer, f"{topic_prefix}inventory", [new_envelope(short)])
            await order.order_when(http, f"R{n}", lambda v: v["waiting_units"] == 2, "2 units waiting")

        await place(0)
        # Inventory lists a substitute of the SKU (the order service keeps the list from its topic).
        substitute = unique_name("LAMP-ALT")
        listed = SkuSubstitutesChanged(sku=sku, substitutes=[substitute], actor="staff-1")
        await publish(producer, f"{topic_prefix}inventory", [new_envelope(listed)])

        async def substitutes_known() -> bool:
            conn = await asyncpg.connect(database_url)
            try:
                return bool(await conn.fetchval("SELECT 1 FROM sku_substitutes WHERE sku = $1", sku))
            finally:
                await conn.close()

        await eventually(substitutes_known, what="the order service to know the substitutes")
        routes = [
            Route("POST /orders", "/orders", frozenset({CHECKOUT}), 202, json=lambda n: placed(f"P{n}")),
            Route("GET /orders/{order_id}", "/orders/R0", VIEWS | {CHECKOUT}),
            Route(
                "POST /orders/{order_id}/cancel", "/orders/R{n}/cancel", frozenset({SUPPORT}), prepare=place
            ),
            Route(
                "POST /orders/{order_id}/lines/{line_id}/cancel-backordered",
                "/orders/R{n}/lines/1/cancel-backordered",
                frozenset({SUPPORT}),
                prepare=place_and_backorder,
            ),
            Route(
                "POST /orders/{order_id}/lines/{line_id}/substitution",
                "/orders/R{n}/lines/1/substitution",
                frozenset({SUPPORT}),
                json=lambda n: {"sku": substitute},
                prepare=place_and_backorder,
            ),
            Route("GET /backorders", "/backorders", VIEWS),
            Route("GET /reports", "/reports", VIEWS),
            Route("GET /reports/rates", "/reports/rates", VIEWS),
            Route("GET /reports/ageing", "/reports/ageing", VIEWS),
            *PARKED_EVENTS,
        ]
        await check_boundaries(http, config, routes)

        # Customer name and address: support and staff see them, the others get null.
        for roles, shown in [((SUPPORT,), True), ((STAFF,), True), ((READER,), False), ((CHECKOUT,), False)]:
            customer = (await http.get("/orders/R0", headers=as_role(config, *roles))).json()["customer"]
            assert (customer["email"], customer["name"]) == (
                ("R0@example.com", "Ada Lovelace") if shown else (None, None)
            ), roles
            assert customer["customer_id"] == "c-R0"

        # A shop's checkout token places and reads that shop's orders only.
        shop_a = as_role(config, CHECKOUT, subject="checkout-a", shop="shop-a")
        refused = await http.post("/orders", json=placed("S1"), headers=shop_a)
        assert refused.status_code == 403 and "for shop shop-a only" in refused.json()["detail"]
        accepted = await http.post("/orders", json=placed("S2", shop_id="shop-a"), headers=shop_a)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["customer"]["email"] is None
        assert (await http.get("/orders/S2", headers=shop_a)).status_code == 200
        assert (await http.get("/orders/R0", headers=shop_a)).status_code == 404  # another shop's
        assert (await http.get("/orders/S1")).status_code == 404  # the refused one was never placed


# --- inventory ---------------------------------------------------------------------------------------------


async def test_inventory_service_roles(database_url: str, kafka_bootstrap: str, topic_prefix: str) -> None:
    sku = unique_name("BOOT")
    config = inventory.settings(database_url, kafka_bootstrap, topic_prefix)
    async with inventory.serving(config) as http:
        stocked = await http.post(f"/skus/{sku}/adjustments", json={"delta": 10, "reason": "opening"})
        assert stocked.status_code == 200, stocked.text
        staff_only = frozenset({STAFF})
        routes = [
            Route("GET /stock/{sku}", f"/stock/{sku}", VIEWS),
            Route("GET /reports/waiting", "/reports/waiting", VIEWS),
            Route(
                "PUT /skus/{sku}/policy",
                f"/skus/{sku}/policy",
                staff_only,
                json=lambda n: {"backorder_policy": "allow"},
            ),
            Route(
                "POST /skus/{sku}/adjustments",
                f"/skus/{sku}/adjustments",
                staff_only,
                json=lambda n: {"delta": 1, "reason": "found one", "adjustment_id": f"a{n}"},
            ),
            Route(
                "POST /skus/{sku}/counts",
                f"/skus/{sku}/counts",
                staff_only,
                json=lambda n: {"count_id": f"c{n}", "counted": 12, "reason": "cycle count"},
            ),
            Route("GET /skus/{sku}/allocations", f"/skus/{sku}/allocations", VIEWS),
            Route(
                "PUT /skus/{sku}/substitutes",
                f"/skus/{sku}/substitutes",
                staff_only,
                json=lambda n: {"substitutes": [f"ALT-{n}"]},
            ),
            Route("GET /skus/{sku}/substitutes", f"/skus/{sku}/substitutes", VIEWS),
            *PARKED_EVENTS,
        ]
        await check_boundaries(http, config, routes)

        # The audit actor is the token's subject, in the response's events and the published ones.
        ann = as_role(config, STAFF, subject="ann")
        body = {"delta": -1, "reason": "damaged"}
        assert (await http.post(f"/skus/{sku}/adjustments", json=body, headers=ann)).status_code == 200
        assert (await payload_of(database_url, "StockAdjusted"))["actor"] == "ann"
        count = {"count_id": "ann-1", "counted": 7, "reason": "recount"}
        assert (await http.post(f"/skus/{sku}/counts", json=count, headers=ann)).status_code == 200
        assert (await payload_of(database_url, "StockCounted"))["actor"] == "ann"
        policy = {"backorder_policy": "cap", "backorder_cap": 5}
        assert (await http.put(f"/skus/{sku}/policy", json=policy, headers=ann)).status_code == 200
        assert (await payload_of(database_url, "SkuPolicyChanged"))["actor"] == "ann"
        for path, named in [
            (f"/skus/{sku}/adjustments", {**body, "actor": "bob"}),
            (f"/skus/{sku}/counts", {**count, "count_id": "bob-1", "actor": "bob"}),
            (f"/outbox/parked/{NOWHERE}/retry", {"actor": "bob"}),
        ]:
            refused = await http.post(path, json=named, headers=ann)
            assert refused.status_code == 422 and "actor comes from the bearer token" in refused.text, path
        refused = await http.put(f"/skus/{sku}/policy", json={**policy, "actor": "bob"}, headers=ann)
        assert refused.status_code == 422 and "actor comes from the bearer token" in refused.text
        listed = {"substitutes": ["ALT-ann"]}
        assert (await http.put(f"/skus/{sku}/substitutes", json=listed, headers=ann)).status_code == 200
        assert (await payload_of(database_url, "SkuSubstitutesChanged"))["actor"] == "ann"
        refused = await http.put(f"/skus/{sku}/substitutes", json={**listed, "actor": "bob"}, headers=ann)
        assert refused.status_code == 422 and "actor comes from the bearer token" in refused.text


# --- procurement -------------------------------------------------------------------------------------------


async def test_procurement_service_roles(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku = unique_name("TENT")
    config = procurement.settings(database_url, kafka_bootstrap, topic_prefix)
    async with procurement.serving(config, procurement.FixedClock()) as http:
        # A backordered line and a supplier: procurement issues a purchase order and promises an ETA.
        waiting = [
            *procurement.backordered(sku, "o1", demanded=4, available=0),
            *procurement.Inventory().queue(sku, ("o1", 4)),
        ]
        await publish(producer, f"{topic_prefix}inventory", waiting)
        await procurement.sku_reaches(http, sku, lambda v: v["waiting_lines"] == 1, "the line waits")
        put = await procurement.set_catalogue(http, sku, procurement.supplier("P", lead_time_days=5))
        assert put.status_code == 200, put.text
        [po] = await eventually(lambda: purchase_orders(http, sku), what="a purchase order")
        staff_only = frozenset({STAFF})
        routes = [
            Route(
                "PUT /skus/{sku}/suppliers",
                f"/skus/{unique_name('OTHER')}/suppliers",
                staff_only,
                json=lambda n: {"suppliers": []},
            ),
            Route("GET /skus/{sku}/suppliers", f"/skus/{sku}/suppliers", VIEWS),
            Route("GET /skus/{sku}", f"/skus/{sku}", VIEWS),
            Route("GET /purchase-orders", "/purchase-orders", VIEWS),
            Route("GET /purchase-orders/{po_id}", f"/purchase-orders/{po['po_id']}", VIEWS),
            Route("GET /etas", "/etas?order_id=o1", VIEWS),
            Route("GET /reports/unsourced", "/reports/unsourced", VIEWS),
            Route("GET /reports/suppliers", "/reports/suppliers", VIEWS),
            Route(
                "PUT /skus/{sku}/replenishment",
                f"/skus/{unique_name('OTHER')}/replenishment",
                staff_only,
                json=lambda n: {"mode": "suggest"},
            ),
            Route("GET /skus/{sku}/replenishment", f"/skus/{sku}/replenishment", VIEWS),
            Route("GET /reports/demand-signals", "/reports/demand-signals", VIEWS),
            *PARKED_EVENTS,
        ]
        await check_boundaries(http, config, routes)

        # Who changed a catalogue is the token's subject; a body naming someone is refused.
        buyer = as_role(config, STAFF, subject="buyer-7")
        terms = {"suppliers": [procurement.supplier("Q", lead_time_days=3)]}
        changed = await http.put(f"/skus/{sku}/suppliers", json=terms, headers=buyer)
        assert changed.status_code == 200 and changed.json()["actor"] == "buyer-7", changed.text
        assert (await http.get(f"/skus/{sku}/suppliers")).json()["actor"] == "buyer-7"
        naming = {"mode": "suggest", "actor": "x"}
        mode = await http.put(f"/skus/{sku}/replenishment", json=naming, headers=buyer)
        assert mode.status_code == 422, mode.text
        assert (await payload_of(database_url, "SupplierTermsSet"))["actor"] == "buyer-7"
        refused = await http.put(f"/skus/{sku}/suppliers", json={**terms, "actor": "x"}, headers=buyer)
        assert refused.status_code == 422 and "actor comes from the bearer token" in refused.text


async def purchase_orders(http: httpx.AsyncClient, sku: str) -> list[dict[str, Any]] | None:
    response = await http.get("/purchase-orders", params={"sku": sku})
    assert response.status_code == 200, response.text
    return list(response.json()) or None


# --- notifier ----------------------------------------------------------------------------------------------


async def test_notifier_service_roles(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku, order_id = unique_name("SCARF"), unique_name("order")
    async with notifier.mail_relay() as mail:
        config = notifier.settings(database_url, kafka_bootstrap, topic_prefix, mail.port)
        async with notifier.serving(config) as http:
            # An order backordered with an ETA: the notifier tells the customer (a notification).
            placed = notifier.placed(order_id, "ada", "ada@example.com", [("1", sku, 2)])
            await publish(producer, f"{topic_prefix}orders", [placed])
            await publish(producer, f"{topic_prefix}inventory", [notifier.short(order_id, "1", sku, 2, 0)])
            await publish(
                producer, f"{topic_prefix}procurement", [notifier.eta(order_id, "1", sku, date(2031, 4, 1))]
            )
            [sent] = await notifier.settled(http, order_id=order_id)

            async def subscribed(n: int) -> None:
                body = {"customer_id": f"cust{n}", "email": f"cust{n}@example.com"}
                response = await http.post(f"/skus/{sku}/subscriptions", json=body)
                assert response.status_code == 201, response.text

            subscribers = frozenset({STAFF, SUPPORT, CHECKOUT})
            routes = [
                Route(
                    "POST /skus/{sku}/subscriptions",
                    f"/skus/{sku}/subscriptions",
                    subscribers,
                    201,
                    json=lambda n: {"customer_id": f"new{n}", "email": f"new{n}@example.com"},
                ),
                Route(
                    "DELETE /skus/{sku}/subscriptions/{customer_id}",
                    f"/skus/{sku}/subscriptions/cust{{n}}",
                    subscribers,
                    204,
                    prepare=subscribed,
                ),
                Route("GET /skus/{sku}/subscriptions", f"/skus/{sku}/subscriptions", VIEWS),
                Route("GET /notifications", "/notifications", VIEWS),
                Route(
                    "GET /notifications/{notification_id}", f"/notifications/{sent['notification_id']}", VIEWS
                ),
                *PARKED_EVENTS,
            ]
            await check_boundaries(http, config, routes)

            # Addresses and names: to support and staff only.
            await subscribed(0)
            for roles, shown in [((SUPPORT,), True), ((STAFF,), True), ((READER,), False)]:
                headers = as_role(config, *roles)
                listed = (await http.get(f"/skus/{sku}/subscriptions", headers=headers)).json()
                emails = {s["customer_id"]: s["email"] for s in listed["subscriptions"]}
                assert emails["cust0"] == ("cust0@example.com" if shown else None), roles
                [seen] = (
                    await http.get("/notifications", params={"order_id": order_id}, headers=headers)
                ).json()
                one = (await http.get(f"/notifications/{sent['notification_id']}", headers=headers)).json()
                for view in (seen, one):
                    assert (view["email"] == "ada@example.com") is shown, (roles, view)
                    assert view["recipient_ref"] == "email:ada", view  # a reference, not the address
            checkout = as_role(config, CHECKOUT)
            body = {"customer_id": "cyd", "email": "cyd@example.com", "customer_name": "Cyd"}
            created = await http.post(f"/skus/{sku}/subscriptions", json=body, headers=checkout)
            assert created.status_code == 201 and created.json()["email"] is None, created.text

            # A shop's checkout token subscribes and unsubscribes for its own shop only.
            shop_a = as_role(config, CHECKOUT, subject="checkout-a", shop="shop-a")
            refused = await http.post(
                f"/skus/{sku}/subscriptions", json={**body, "customer_id": "dee"}, headers=shop_a
            )
            assert refused.status_code == 403 and "for shop shop-a only" in refused.json()["detail"]
            ours = {**body, "customer_id": "eve", "shop_id": "shop-a"}
            assert (
                await http.post(f"/skus/{sku}/subscriptions", json=ours, headers=shop_a)
            ).status_code == 201
            assert (await http.delete(f"/skus/{sku}/subscriptions/cyd", headers=shop_a)).status_code == 404
            assert (await http.delete(f"/skus/{sku}/subscriptions/eve", headers=shop_a)).status_code == 204
            assert (await http.delete(f"/skus/{sku}/subscriptions/cyd", headers=checkout)).status_code == 204


async def test_edi_adapter_roles(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Any
) -> None:
    config = service_settings(
        EdiSettings,
        service_name="edi",
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        edi_inbox_dir=tmp_path / "inbox",
        edi_outbox_dir=tmp_path / "outbox",
    )
    async with serving(edi_service(), config) as http:
        routes = [
            # An empty body is refused after the token is checked: only a sender gets that far.
            Route("POST /interchanges", "/interchanges", frozenset({SUPPLIER, STAFF}), 422),
            Route("GET /interchanges", "/interchanges", VIEWS),
            Route("GET /rejections", "/rejections", VIEWS),
            Route("GET /purchase-orders/{po_id}", "/purchase-orders/PO-never-sent", VIEWS, 404),
            *PARKED_EVENTS,
        ]
        await check_boundaries(http, config, routes)
