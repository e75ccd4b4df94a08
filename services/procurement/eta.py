"""Backorder ETAs: which expected supply serves each waiting line, and when a line's ETA is news.

Inventory serves the queue head first with whatever arrives, so the n-th waiting unit arrives with the
n-th expected unit (free stock first, today; then arrivals by date, none before today: a PO whose date
passed is overdue and counts from today until a re-plan gives it a revised date). A line's ETA
therefore depends only on where its units end in the queue (`Supply.line_eta`), which lets a decision
re-plan just the lines whose end moved across a step of the supply (see replan.py). `assign_etas` walks
a whole queue: the reference the incremental re-plan is tested against, and the fallback for a legacy
whole-queue snapshot.
"""

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol, TypeAlias

from backbone.contracts.events import BackorderEtaUpdated, EtaBasis

LineKey = tuple[str, str]  # (order_id, line_id)

NO_COVER = "no purchase order covers this line yet"
NO_SUPPLIER = "no supplier is known for this SKU"


class OrderLineRef(Protocol):
    @property
    def order_id(self) -> str: ...
    @property
    def line_id(self) -> str: ...


class QueuedLine(OrderLineRef, Protocol):
    @property
    def quantity(self) -> int: ...


def line_key(line: OrderLineRef) -> LineKey:
    return (line.order_id, line.line_id)


@dataclass(frozen=True, slots=True)
class ArrivalBatch:
    """Units of a PO expected on a day: a shipment notice, or the rest of the PO on its promised date."""

    expected_date: date
    po_id: str
    quantity: int
    supplier_date: date | None = None  # the supplier's own date, when its lateness moved it to expected_date


@dataclass(frozen=True, slots=True)
class LineEta:
    eta: date | None
    po_id: str | None
    reason: str  # why: the supply that completes the line, or why none does
    from_stock: bool = False  # completed by free stock: inventory is about to fill it
    basis: EtaBasis = "awaiting_purchase_order"  # the contract's word for `reason`


ON_HAND = "on hand"
# What serves a unit of the queue, as far as a customer can tell: stock on hand, a day, or nothing (None).
Step: TypeAlias = date | str | None


@dataclass(frozen=True, slots=True)
class Supply:
    """Expected supply as a step function over the queue's units: free stock first, then arrivals by
    (date, po_id). `ends[i]` is the last queue unit that `batches[i]` serves."""

    batches: tuple[ArrivalBatch, ...]
    ends: tuple[int, ...]
    sourced: bool = True  # False: the SKU has no supplier, so what nothing covers cannot be bought

    @classmethod
    def of(
        cls,
        arrivals: Iterable[ArrivalBatch],
        *,
        free_stock: int,
        today: date,
        sourced: bool = True,
        clamp: bool = True,
    ) -> "Supply":
        """`clamp=False` keeps passed dates: the supply as it was when the lines were told them."""
        batches = [ArrivalBatch(today, "", free_stock)] if free_stock > 0 else []  # po_id "": on hand
        arrivals = _not_before(arrivals, today) if clamp else arrivals
        batches.extend(sorted(arrivals, key=lambda a: (a.expected_date, a.po_id)))
        ends, total = [], 0
        for batch in batches:
            total += batch.quantity
            ends.append(total)
        return cls(tuple(batches), tuple(ends), sourced)

    @property
    def total(self) -> int:
        return self.ends[-1] if self.ends else 0

    def line_eta(self, units_ahead: int, quantity: int) -> LineEta:
        """The ETA of a line of `quantity` units behind `units_ahead` waiting units (as `assign_etas`)."""
        end = units_ahead + quantity
        if end <= self.total:
            batch = self.batches[bisect_left(self.ends, end)]
            return _line_eta(quantity, 0, batch, self.sourced)
        if units_ahead < self.total:  # partly covered: the last batch completes what it can
            return _line_eta(quantity, end - self.total, self.batches[-1], self.sourced)
        return _line_eta(quantity, quantity, None, self.sourced)

    def steps(self) -> list[tuple[int, Step]]:
        """(last unit, what serves it) per step, adjacent batches of the same day merged; past the last
        step nothing serves a unit."""
        steps: list[tuple[int, Step]] = []
        for batch, end in zip(self.batches, self.ends, strict=True):
            step: Step = batch.expected_date if batch.po_id else ON_HAND
            if steps and steps[-1][1] == step:
                steps[-1] = (end, step)
            else:
                steps.append((end, step))
        return steps


def assign_etas(
    queue: Sequence[QueuedLine],
    arrivals: Iterable[ArrivalBatch],
    *,
    free_stock: int = 0,
    today: date,
    sourced: bool = True,
) -> dict[LineKey, LineEta]:
    """Walk the queue in allocation order against supply in arrival order, free stock first.

    Inventory serves the queue head first with whatever arrives, so the n-th waiting unit arrives
    with the n-th expected unit; a line's ETA is the arrival of its last unit (today for free stock).
    A line that no supply completes gets no ETA, and neither does any line behind it.
    """
    supply: list[ArrivalBatch] = []
    if free_stock > 0:
        supply.append(ArrivalBatch(today, "", free_stock))  # po_id "" marks stock on hand
    supply.extend(sorted(_not_before(arrivals, today), key=lambda a: (a.expected_date, a.po_id)))

    etas: dict[LineKey, LineEta] = {}
    batch_index, left_in_batch = 0, supply[0].quantity if supply else 0
    for entry in queue:
        wanted, completing = entry.quantity, None
        while wanted > 0 and batch_index < len(supply):
            taken = min(wanted, left_in_batch)
            wanted -= taken
            left_in_batch -= taken
            completing = supply[batch_index]
            if left_in_batch == 0:
                batch_index += 1
                left_in_batch = supply[batch_index].quantity if batch_index < len(supply) else 0
        etas[line_key(entry)] = _line_eta(entry.quantity, wanted, completing, sourced)
    return etas


def _not_before(arrivals: Iterable[ArrivalBatch], today: date) -> list[ArrivalBatch]:
    """Arrivals with a passed date are overdue: expected from today on, never in the past."""
    return [a if a.expected_date >= today else ArrivalBatch(today, a.po_id, a.quantity) for a in arrivals]


def _line_eta(quantity: int, missing: int, completing: ArrivalBatch | None, sourced: bool) -> LineEta:
    if missing > 0 or completing is None:
        if not sourced:
            return LineEta(None, None, NO_SUPPLIER, basis="no_supplier")
        if completing is None:
            return LineEta(None, None, NO_COVER)
        covered = quantity - missing
        return LineEta(None, None, f"purchase orders cover only {covered} of {quantity} units yet")
    if not completing.po_id:
        return LineEta(
            completing.expected_date, None, "covered by stock on hand", from_stock=True, basis="stock_on_hand"
        )
    reason = f"expected with purchase order {completing.po_id} on {completing.expected_date.isoformat()}"
    if completing.supplier_date is not None:
        late, said = (completing.expected_date - completing.supplier_date).days, completing.supplier_date
        reason += f" (supplier's date {said.isoformat()} + {late} days: its usual lateness)"
    return LineEta(completing.expected_date, completing.po_id, reason, basis="purchase_order")


def eta_update(
    sku: str, key: LineKey, new: LineEta, announced: Mapping[LineKey, date | None], trigger: str
) -> BackorderEtaUpdated | None:
    """The update to announce for a line given its ETA now, or None if that is no news.

    Only the date counts as a change: a different PO or wording for the same day tells the customer
    nothing new. Nor does free stock about to fill an announced line: the fill is the news, and a
    "today" just before it would be noise. A line never announced always hears. `trigger` says what
    prompted the re-plan, for the audit trail and the message. A line no supply covers for want of a
    supplier is told so ("no_supplier": no date can be promised), without its trigger: the reason is
    the whole story.
    """
    if key in announced and (announced[key] == new.eta or new.from_stock):
        return None
    order_id, line_id = key
    return BackorderEtaUpdated(
        order_id=order_id,
        line_id=line_id,
        sku=sku,
        eta=new.eta,
        previous_eta=announced.get(key),
        po_id=new.po_id,
        reason=new.reason if new.basis == "no_supplier" else f"{new.reason} ({trigger})",
        basis=new.basis,
    )


def eta_updates(
    sku: str,
    queue: Sequence[QueuedLine],
    assigned: Mapping[LineKey, LineEta],
    announced: Mapping[LineKey, date | None],
    trigger: str,
) -> list[BackorderEtaUpdated]:
    """One update per queued line whose ETA is news (see `eta_update`), in queue order."""
    updates = []
    for entry in queue:
        key = line_key(entry)
        update = eta_update(sku, key, assigned[key], announced, trigger)
        if update is not None:
            updates.append(update)
    return updates
