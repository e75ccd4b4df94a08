"""Backorder ETAs: which expected supply serves each waiting line, and which lines' ETA changed."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from backbone.contracts.events import BackorderEtaUpdated, BackorderQueueEntry

LineKey = tuple[str, str]  # (order_id, line_id)

NO_COVER = "no purchase order covers this line yet"


class OrderLineRef(Protocol):
    @property
    def order_id(self) -> str: ...
    @property
    def line_id(self) -> str: ...


def line_key(line: OrderLineRef) -> LineKey:
    return (line.order_id, line.line_id)


@dataclass(frozen=True, slots=True)
class ArrivalBatch:
    """Units of a PO expected on a day: a shipment notice, or the rest of the PO on its promised date."""

    expected_date: date
    po_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class LineEta:
    eta: date | None
    po_id: str | None
    basis: str  # why: the supply that completes the line, or why none does
    from_stock: bool = False  # completed by free stock: inventory is about to fill it


def assign_etas(
    queue: Sequence[BackorderQueueEntry],
    arrivals: Iterable[ArrivalBatch],
    *,
    free_stock: int = 0,
    today: date,
) -> dict[LineKey, LineEta]:
    """Walk the queue in allocation order against supply in arrival order, free stock first.

    Inventory serves the queue head first with whatever arrives, so the n-th waiting unit arrives
    with the n-th expected unit; a line's ETA is the arrival of its last unit (today for free stock).
    A line that no supply completes gets no ETA, and neither does any line behind it.
    """
    supply: list[ArrivalBatch] = []
    if free_stock > 0:
        supply.append(ArrivalBatch(today, "", free_stock))  # po_id "" marks stock on hand
    supply.extend(sorted(arrivals, key=lambda a: (a.expected_date, a.po_id)))

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
        etas[line_key(entry)] = _line_eta(entry, wanted, completing)
    return etas


def _line_eta(entry: BackorderQueueEntry, missing: int, completing: ArrivalBatch | None) -> LineEta:
    if completing is None:
        return LineEta(None, None, NO_COVER)
    if missing > 0:
        covered = entry.quantity - missing
        return LineEta(None, None, f"purchase orders cover only {covered} of {entry.quantity} units yet")
    if not completing.po_id:
        return LineEta(completing.expected_date, None, "covered by stock on hand", from_stock=True)
    return LineEta(
        completing.expected_date,
        completing.po_id,
        f"expected with purchase order {completing.po_id} on {completing.expected_date.isoformat()}",
    )


def eta_updates(
    sku: str,
    queue: Sequence[BackorderQueueEntry],
    assigned: Mapping[LineKey, LineEta],
    announced: Mapping[LineKey, date | None],
    trigger: str,
) -> list[BackorderEtaUpdated]:
    """One update per queued line whose ETA differs from the one last announced, or that has none yet.

    Only the date counts as a change: a different PO or wording for the same day tells the customer
    nothing new. Nor does free stock about to fill an announced line: the fill is the news, and a
    "today" just before it would be noise. `trigger` says what prompted the re-plan, for the audit
    trail and the message.
    """
    updates = []
    for entry in queue:
        key = line_key(entry)
        new = assigned[key]
        if key in announced and (announced[key] == new.eta or new.from_stock):
            continue
        updates.append(
            BackorderEtaUpdated(
                order_id=entry.order_id,
                line_id=entry.line_id,
                sku=sku,
                eta=new.eta,
                previous_eta=announced.get(key),
                po_id=new.po_id,
                reason=f"{new.basis} ({trigger})",
            )
        )
    return updates
