"""The service's edges without servers: HTTP request models, settings, and which events it loads for."""

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from backbone.auth import generate_secret
from backbone.contracts import new_envelope
from backbone.contracts.events import (
    CONTRACT_EVENTS,
    BackorderQueueEntry,
    BackorderQueueSnapshotV1,
    StockAdjusted,
    StockLevelChanged,
    StockReserved,
    StockShort,
)
from services.procurement.api import CatalogueRequest
from services.procurement.app import REGISTRY, ProcurementSettings, utc_today
from services.procurement.events import PROCUREMENT_EVENTS, SupplierTerms
from services.procurement.handlers import concerns_procurement
from services.procurement.planning import DEFAULT_POLICY, PurchasePolicy
from tests.unit.procurement.scenario import joined


def body(**changes: Any) -> dict[str, Any]:
    primary = {
        "supplier_id": "P",
        "lead_time_days": 5,
        "unit_cost": "4.10",
        "currency": "EUR",
        "role": "primary",
    }
    return {"suppliers": [{**primary, **changes}]}


@pytest.mark.parametrize("cost", ["4.10", 4.1, 4, "4"])
def test_money_is_a_decimal_string_or_number(cost: Any) -> None:
    [terms] = [s.terms() for s in CatalogueRequest.model_validate(body(unit_cost=cost)).suppliers]
    assert isinstance(terms, SupplierTerms)
    assert terms.unit_cost == Decimal(str(cost))
    assert (terms.minimum_order_quantity, terms.pack_size) == (1, 1)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"lead_time_days": "5"}, "valid integer"),
        ({"lead_time_days": 5.0}, "valid integer"),
        ({"pack_size": True}, "valid integer"),
        ({"lead_time_days": 366}, "less than or equal to 365"),
        ({"minimum_order_quantity": 0}, "greater than 0"),
        ({"unit_cost": "4.101"}, "decimal places"),
        ({"unit_cost": "-1"}, "greater than or equal to 0"),
        ({"currency": "eur"}, "pattern"),
        ({"role": "backup"}, "'primary' or 'alternate'"),
        ({"supplier_id": " P"}, "pattern"),
        ({"note": "x"}, "Extra inputs"),
    ],
)
def test_malformed_terms_are_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        CatalogueRequest.model_validate(body(**changes))


def test_an_alternate_in_another_currency_is_refused_because_it_could_never_be_chosen() -> None:
    request = body()
    request["suppliers"].append(
        {**request["suppliers"][0], "supplier_id": "A", "role": "alternate", "currency": "USD"}
    )
    with pytest.raises(ValidationError, match="'A' quotes in USD but the primary 'P' in EUR"):
        CatalogueRequest.model_validate(request)


def test_an_empty_catalogue_is_allowed_it_stops_purchasing() -> None:
    assert CatalogueRequest.model_validate({"suppliers": []}).suppliers == []


def test_the_actor_comes_from_the_token_so_a_body_naming_one_is_refused() -> None:
    with pytest.raises(ValidationError, match="actor comes from the bearer token"):
        CatalogueRequest.model_validate({**body(), "actor": "ann"})


def test_the_policy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nowhere/db")
    monkeypatch.setenv("AUTH_TOKEN_SECRET", generate_secret())
    assert ProcurementSettings().policy == DEFAULT_POLICY
    monkeypatch.setenv("ALTERNATE_MIN_DAYS_SOONER", "1")
    monkeypatch.setenv("ALTERNATE_MAX_COST_PREMIUM", "0.25")
    monkeypatch.setenv("ENLARGE_MAX_DELAY_DAYS", "2")
    monkeypatch.setenv("OVERDUE_GRACE_DAYS", "5")
    settings = ProcurementSettings()
    assert settings.service_name == "procurement"
    assert settings.policy == PurchasePolicy(
        alternate_min_days_sooner=1,
        alternate_max_cost_premium=Decimal("0.25"),
        enlarge_max_delay_days=2,
        overdue_grace_days=5,
    )
    monkeypatch.setenv("OVERDUE_GRACE_DAYS", "0")  # an overdue PO must move past today
    with pytest.raises(ValidationError, match="overdue_grace_days"):
        ProcurementSettings()
    monkeypatch.setenv("OVERDUE_GRACE_DAYS", "3")
    monkeypatch.setenv("ALTERNATE_MAX_COST_PREMIUM", "-0.1")
    with pytest.raises(ValidationError, match="alternate_max_cost_premium"):
        ProcurementSettings()


def test_the_clock_is_a_date() -> None:
    assert isinstance(utc_today(), date)


def test_streams_are_loaded_only_for_events_that_can_change_procurement() -> None:
    def short(disposition: str) -> StockShort:
        return StockShort.model_validate(
            {
                "order_id": "o",
                "line_id": "1",
                "sku": "S",
                "demanded": 3,
                "available": 1,
                "short_quantity": 2,
                "disposition": disposition,
            }
        )

    assert concerns_procurement(joined("A", 2))
    level = StockLevelChanged(sku="S", on_hand=3, reserved=1, available=2, backordered=0)
    assert concerns_procurement(level)  # the effect of reservations, adjustments, counts, shipments
    # The line's "joined" says what a shortfall would; the retired whole-queue snapshot is skipped.
    assert not concerns_procurement(short("backordered"))
    assert not concerns_procurement(short("rejected"))
    entries = [BackorderQueueEntry(order_id="o", line_id="1", quantity=2)]
    assert not concerns_procurement(BackorderQueueSnapshotV1(sku="S", entries=entries))
    assert not concerns_procurement(StockReserved(order_id="o", line_id="1", sku="S", quantity=1))
    adjusted = StockAdjusted(sku="S", delta=1, on_hand_after=1, reason="count", actor="ann")
    assert not concerns_procurement(adjusted)


def test_the_registry_decodes_the_contract_and_procurements_own_events() -> None:
    for model in (*CONTRACT_EVENTS, *PROCUREMENT_EVENTS):
        assert REGISTRY.model(model.event_type) is model
    for payload in (joined("A", 2), BackorderQueueSnapshotV1(sku="S", entries=[])):
        envelope = new_envelope(payload)
        assert REGISTRY.decode(envelope.to_json()).payload == envelope.payload
