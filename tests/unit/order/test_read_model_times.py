"""The times the read models keep per line, read off the order stream's events (projections.track)."""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from backbone.contracts import Envelope, EventPayload, new_envelope
from services.order.domain import CancelBackorderedUnits, initial_state, rebuild
from services.order.projections import LineTimes, track
from tests.unit.order.builders import PLACED_AT, Order, eta, fill, placed, released, short

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def hourly(events: Sequence[EventPayload]) -> list[Envelope[Any]]:
    """Envelopes of the events, one hour apart from T0."""
    return [new_envelope(e, occurred_at=T0 + timedelta(hours=i)) for i, e in enumerate(events)]


def test_backordered_first_eta_and_completing_fill_are_timed() -> None:
    order = Order().apply_all(
        [
            placed(("l1", "SKU-A", 10, "1.00"), ("l2", "SKU-B", 1, "1.00")),  # hour 0
            short("l1", "SKU-A", 10, 4),  # hour 1
            eta("l1", "SKU-A", date(2026, 3, 9)),  # hour 2: the first promise
            eta("l1", "SKU-A", date(2026, 3, 12)),  # hour 3
            fill("l1", "SKU-A", 2, remaining=4),  # hour 4
            fill("l1", "SKU-A", 4, remaining=0),  # hour 5: nothing waits any more
        ]
    )

    tracked = track(initial_state("o-1"), hourly(order.stream))

    assert tracked.times == {
        "l1": LineTimes(
            backordered_at=T0 + timedelta(hours=1),
            first_eta=date(2026, 3, 9),
            first_eta_at=T0 + timedelta(hours=2),
            last_filled_at=T0 + timedelta(hours=5),
            filled_at=T0 + timedelta(hours=5),
        )
    }
    assert tracked.last_change == {"l1": 5, "l2": 0}  # the placement changed l2, nothing after it
    assert tracked.state == rebuild("o-1", order.stream) == order.state


def test_times_of_later_events_are_read_from_the_state_before_them() -> None:
    order = Order().apply_all(
        [
            placed(("l1", "SKU-A", 10, "1.00")),
            short("l1", "SKU-A", 10, 4),
            fill("l1", "SKU-A", 2, remaining=4),
        ]
    )
    before = order.state
    new = order.apply(fill("l1", "SKU-A", 4, remaining=0))  # with the pick list it changed

    later = track(before, hourly(new))

    # Only what these events show: the completing fill; the backorder's time is in the stored row.
    assert later.times == {"l1": LineTimes(last_filled_at=T0, filled_at=T0)}
    assert later.last_change == {"l1": 0}


def test_a_wait_ended_by_cancellation_has_no_fill_time() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 10, "1.00")), short("l1", "SKU-A", 10, 4)])
    order.apply(fill("l1", "SKU-A", 2, remaining=4))
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=PLACED_AT))
    order.apply(released("l1", "SKU-A", dropped=4))  # the rest of the wait ends by inventory's drop

    envelopes = hourly(order.stream)
    tracked = track(initial_state("o-1"), envelopes)

    times = tracked.times["l1"]
    assert [type(e).__name__ for e in order.stream][tracked.last_change["l1"]] == "RefundRequested"
    filled_at = next(e.occurred_at for e in envelopes if type(e.payload).__name__ == "LineFilled")
    assert times.last_filled_at == filled_at
    assert times.filled_at is None
    assert tracked.state.lines["l1"].waiting == 0
