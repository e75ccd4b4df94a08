"""Size limits of the contract, enforced where messages enter: consumers, `POST /orders`.

Kafka's defaults cap a record batch at 1 MiB (`max.message.bytes`, producers' `max.request.size`), but
a compressed batch can hold a value many times larger. A consumer must be able to dead-letter any event
it refuses with its headers, so an event's JSON value, as consumed (after decompression), stays well
below 1 MiB. The largest valid OrderPlaced (500 lines, every text field at its maximum) is about 810 kB.
"""

from backbone.contracts.registry import DecodeError

MAX_EVENT_BYTES = 900_000


def check_event_size(size: int) -> None:
    """Refuse a message value of `size` bytes before parsing it (DecodeError, so it is dead-lettered)."""
    if size > MAX_EVENT_BYTES:
        raise DecodeError(
            f"message too large: {size} bytes, the contract's limit is {MAX_EVENT_BYTES} bytes "
            "(the JSON value after decompression)"
        )
