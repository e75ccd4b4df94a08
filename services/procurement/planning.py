"""Purchase planning: how many units to buy, rounded to what a supplier sells, and from which supplier."""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from services.procurement.events import SupplierTerms


@dataclass(frozen=True, slots=True)
class PurchasePolicy:
    """The numbers of the purchasing rules.

    An alternate supplier beats the primary when it arrives sooner by MORE than
    `alternate_min_days_sooner` days and costs at most `alternate_max_cost_premium` (a fraction:
    0.10 = 10 %) more per unit.
    An open, unconfirmed PO is enlarged rather than a new one issued when the larger revision would
    arrive at most `enlarge_max_delay_days` later than the PO is due now; the default 0 never delays
    lines that were already given the PO's date, so enlarging happens while the supplier's lead time
    still fits (typically within the day of a burst of backorders).
    A PO whose expected date passed with units outstanding is overdue: its units are then expected
    `overdue_grace_days` days from the day that is noticed (the goods are late, not reordered, so a
    fresh lead time would be too pessimistic), and again so each time that date passes.
    """

    alternate_min_days_sooner: int = 3
    alternate_max_cost_premium: Decimal = Decimal("0.10")
    enlarge_max_delay_days: int = 0
    overdue_grace_days: int = 3


DEFAULT_POLICY = PurchasePolicy()


def replenishment_need(
    *, backordered: int, reorder_point: int, safety_stock: int, free_stock: int, on_order: int
) -> int:
    """Units to buy now, before rounding to what the supplier sells; 0 when nothing is needed.

        need = backordered + max(reorder_point, safety_stock) - (free_stock + on_order)

    Every waiting unit must be bought, and once it is served the SKU should hold its target level:
    at least the reorder point (so the purchase does not leave it at the trigger again) and at least
    the safety stock. Supply is free stock (on hand minus reserved: reserved units are promised to
    orders already) plus what open POs still have to deliver.
    """
    target_level = max(reorder_point, safety_stock)
    return max(0, backordered + target_level - (free_stock + on_order))


def surplus(
    *, backordered: int, reorder_point: int, safety_stock: int, free_stock: int, on_order: int
) -> int:
    """Units of supply beyond what `replenishment_need` asks for (the mirror of it); 0 when none."""
    target_level = max(reorder_point, safety_stock)
    return max(0, free_stock + on_order - (backordered + target_level))


def reduced_quantity(ordered: int, excess: int, terms: SupplierTerms | None) -> int:
    """What an unconfirmed PO of `ordered` units shrinks to when `excess` of its units are not needed:
    the rest rounded up to what the supplier sells (0: cancel it). Without the supplier's terms (it left
    the catalogue) its rounding is unknown, so the PO is kept whole unless all of it is surplus."""
    if excess >= ordered:
        return 0
    if terms is None:
        return ordered
    return min(ordered, order_quantity(ordered - excess, terms))


MAX_PO_QUANTITY = 1_000_000_000  # the contract's largest quantity (backbone.contracts.types.Quantity)


def max_order_quantity(terms: SupplierTerms) -> int:
    """The most one PO to the supplier may hold: whole packs within the contract's maximum (and at
    least the supplier's minimum, itself within the maximum)."""
    return max(terms.minimum_order_quantity, MAX_PO_QUANTITY // terms.pack_size * terms.pack_size)


def order_quantity(units: int, terms: SupplierTerms) -> int:
    """`units` rounded up to the supplier's minimum order quantity, then up to whole packs; 0 stays 0."""
    if units <= 0:
        return 0
    at_least_minimum = max(units, terms.minimum_order_quantity)
    packs = -(-at_least_minimum // terms.pack_size)  # ceiling division
    return packs * terms.pack_size


def revised_arrival(due: date, fresh_arrival: date, policy: PurchasePolicy = DEFAULT_POLICY) -> date | None:
    """When an enlarged PO would arrive, or None if that is too late to enlarge it (see PurchasePolicy).

    `due` is when the PO is expected now; `fresh_arrival` when a PO issued today would arrive. The
    revision is a new request to the supplier, so it cannot be expected sooner than a fresh PO.
    """
    revised = max(due, fresh_arrival)
    if revised - due > timedelta(days=policy.enlarge_max_delay_days):
        return None
    return revised


def choose_supplier(
    suppliers: Sequence[SupplierTerms],
    policy: PurchasePolicy = DEFAULT_POLICY,
    delays: Mapping[str, int] | None = None,
) -> SupplierTerms | None:
    """The primary, unless an alternate arrives sooner by more than the policy's days at an acceptable
    cost; then the soonest such alternate (cheapest on a tie). None without a catalogue.

    Arrival is the quoted lead time plus the supplier's usual lateness (`delays`, days by supplier id:
    the P80 of its receipts), so a primary that is habitually late loses to a punctual alternate.
    Costs in another currency than the primary's cannot be compared without exchange rates, so such
    alternates never qualify.
    """
    primary = next((s for s in suppliers if s.role == "primary"), None)
    if primary is None:
        return None
    late = delays or {}

    def days(terms: SupplierTerms) -> int:
        return terms.lead_time_days + late.get(terms.supplier_id, 0)

    cost_ceiling = primary.unit_cost * (1 + policy.alternate_max_cost_premium)
    qualifying = [
        s
        for s in suppliers
        if s.role == "alternate"
        and s.currency == primary.currency
        and days(primary) - days(s) > policy.alternate_min_days_sooner
        and s.unit_cost <= cost_ceiling
    ]
    if not qualifying:
        return primary
    return min(qualifying, key=lambda s: (days(s), s.unit_cost, s.supplier_id))


_MAX_IDENTIFIER = 128


def purchase_order_id(sku: str, sequence: int) -> str:
    """Deterministic PO id: the SKU's `sequence`-th PO. Derived from state, so a redelivered input
    decides the same id, and unique across SKUs. A SKU too long for an identifier is hashed (under
    another prefix, so a hashed id never equals a readable one)."""
    readable = f"PO-{sku}-{sequence:04d}"
    if len(readable) <= _MAX_IDENTIFIER:
        return readable
    digest = hashlib.sha256(sku.encode()).hexdigest()[:24]
    return f"POH-{digest}-{sequence:04d}"
