import pytest
from pydantic import ValidationError

from backbone.auth import generate_secret
from services.inventory.app import InventorySettings


def test_unknown_sku_policy_defaults_to_reject_and_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://localhost/x")
    monkeypatch.setenv("AUTH_TOKEN_SECRET", generate_secret())
    assert InventorySettings().unknown_sku_policy == "reject"

    monkeypatch.setenv("UNKNOWN_SKU_POLICY", "backorder")
    assert InventorySettings().unknown_sku_policy == "backorder"


def test_an_invalid_unknown_sku_policy_stops_the_start_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://localhost/x")
    monkeypatch.setenv("UNKNOWN_SKU_POLICY", "maybe")

    with pytest.raises(
        ValidationError, match=r"unknown_sku_policy\n  Input should be 'reject' or 'backorder'"
    ):
        InventorySettings()
