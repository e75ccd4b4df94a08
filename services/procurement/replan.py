"""Which waiting lines a decision can have given a new ETA, found without walking the queue.

A line's ETA is what serves the last of its units (Supply.line_eta): stock on hand, a day, or nothing. When
a decision begins every line has been announced and matches its supply, so a line can only be news if what
serves its last unit changed. A decision changes at most one line of the queue (by `d` units; a line moved
to another rank, a rare correction, re-plans them all) and the supply; the lines ahead of that line keep
their last unit, those behind move by `d`. So the lines to re-plan are the changed line itself, the lines
ahead whose last unit u is served differently now than before, and the lines behind whose last unit u is
served differently now than u - d was before. Both are unit ranges found by merging the two supplies' steps
(a handful), and the lines ending in a range are found by position in the ranked queue: O(log n + lines in
the ranges). A receipt moves the units it brings (the lines inventory is about to fill); the fill that
follows moves supply and queue alike and re-plans nothing but the filled line.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from backbone.contracts.events import BackorderEtaUpdated
from services.procurement.eta import LineKey, Step, Supply, eta_update
from services.procurement.queue import WaitingQueue

# A waiting line to re-plan: (key, units of the lines ahead of it, its units).
Line = tuple[LineKey, int, int]
UnitRange = tuple[float, float]  # queue units lo < u <= hi; lo may be -inf


@dataclass(frozen=True, slots=True)
class LineChange:
    """The one waiting line a decision changed, at a rank it kept: its units before and after (0: not
    waiting), behind `units_ahead` units that did not change."""

    key: LineKey
    units_ahead: int
    before: int
    after: int


def lines_to_replan(
    queue: WaitingQueue, before: Supply, after: Supply, change: LineChange | None
) -> list[Line]:
    """The lines of `queue` (after the decision) whose ETA may have moved, in queue order."""
    if change is None:
        return _lines_ending_in(queue, _served_differently(after, before, 0), 0, queue.units)
    lines = _lines_ending_in(queue, _served_differently(after, before, 0), 0, change.units_ahead)
    if change.after > 0:
        lines.append((change.key, change.units_ahead, change.after))
    shift = change.after - change.before
    behind = change.units_ahead + change.after
    lines.extend(_lines_ending_in(queue, _served_differently(after, before, shift), behind, queue.units))
    return lines


def all_lines(queue: WaitingQueue) -> list[Line]:
    """Every line of the queue: for a change that moved a line to another rank."""
    lines, ahead = [], 0
    for key, _, units in queue.items():
        lines.append((key, ahead, units))
        ahead += units
    return lines


def updates_for(
    sku: str,
    lines: Sequence[Line],
    supply: Supply,
    announced: Mapping[LineKey, date | None],
    trigger: str,
) -> list[BackorderEtaUpdated]:
    """The ETA updates of the given lines (in their order), by the rule of eta.eta_update."""
    updates = []
    for key, ahead, units in lines:
        update = eta_update(sku, key, supply.line_eta(ahead, units), announced, trigger)
        if update is not None:
            updates.append(update)
    return updates


def _served_differently(after: Supply, before: Supply, shift: int) -> list[UnitRange]:
    """The ranges of units u where what serves u `after` differs from what served u - shift `before`."""
    new: list[tuple[float, Step]] = [*after.steps(), (math.inf, None)]
    old: list[tuple[float, Step]] = [(end + shift, step) for end, step in before.steps()]
    old.append((math.inf, None))
    ranges: list[UnitRange] = []
    start, i, j = -math.inf, 0, 0
    while True:
        end = min(new[i][0], old[j][0])
        if new[i][1] != old[j][1]:
            if ranges and ranges[-1][1] == start:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((start, end))
        if end == math.inf:
            return ranges  # past both supplies nothing serves a unit: never a difference
        start = end
        i += new[i][0] == end
        j += old[j][0] == end


def _lines_ending_in(queue: WaitingQueue, ranges: Sequence[UnitRange], lo: int, hi: int) -> list[Line]:
    """The lines whose last unit lies in one of `ranges` and in lo < u <= hi, in queue order."""
    lines: list[Line] = []
    for range_lo, range_hi in ranges:
        first, last = max(range_lo, lo), min(range_hi, hi)
        if first >= last:
            continue
        located = queue.locate_unit(int(first) + 1)
        if located is None:
            continue
        position, ahead = located
        for key, _, units in queue.items(position):
            if ahead + units > last:
                break
            lines.append((key, ahead, units))
            ahead += units
    return lines
