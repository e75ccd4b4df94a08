"""The SKU's waiting lines as procurement sees them: a persistent ranked map in inventory's allocation order.

Built from inventory's one-line changes (BackorderQueueChanged v2), so a change costs O(log n) and the
queue is never copied. A line's rank is what inventory allocates by: priority score (highest first),
placement time, arrival sequence; the line's id ends the rank so that ranks are unique even if a faulty
producer repeated a sequence number.
"""

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeAlias

from backbone.contracts.events import BackorderQueueEntry
from backbone.ranked import RankedMap
from services.procurement.eta import LineKey, line_key

# (-priority_score, placed_at, sequence, order_id, line_id): ascending = served first.
QueueRank: TypeAlias = tuple[Decimal, datetime, int, str, str]
WaitingQueue: TypeAlias = RankedMap[LineKey, QueueRank, None]

# Lines of a legacy whole-queue snapshot carry no rank: they are placed ahead of every line that joins
# later (they were waiting first), in the snapshot's order.
LEGACY_PLACED_AT = datetime(1, 1, 1, tzinfo=UTC)


def queue_rank(key: LineKey, priority_score: Decimal, placed_at: datetime, sequence: int) -> QueueRank:
    return (-priority_score, placed_at, sequence, *key)


def priority_score_of(rank: QueueRank) -> Decimal:
    return -rank[0]


def set_line(queue: WaitingQueue, key: LineKey, rank: QueueRank, units: int) -> WaitingQueue:
    """The queue with `key` waiting for `units` at `rank` (0 units: not waiting), whatever it held before."""
    if key in queue:
        if units > 0 and queue.rank(key) == rank:
            return queue.replace(key, None, units)
        queue = queue.remove(key)
    return queue.insert(key, rank, None, units) if units > 0 else queue


def reduce_line(queue: WaitingQueue, key: LineKey, remaining: int) -> WaitingQueue:
    """The queue with `key` down to `remaining` units; a line not in the queue stays out of it."""
    if key not in queue:
        return queue
    return queue.replace(key, None, remaining) if remaining > 0 else queue.remove(key)


def legacy_queue(entries: Iterable[BackorderQueueEntry]) -> WaitingQueue:
    """A queue from a whole-queue snapshot (contract 1.x), ranked by the snapshot's order."""
    return RankedMap.of(
        (line_key(e), queue_rank(line_key(e), Decimal(0), LEGACY_PLACED_AT, position), None, e.quantity)
        for position, e in enumerate(entries, start=1)
    )
