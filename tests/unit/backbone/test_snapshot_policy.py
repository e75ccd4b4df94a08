"""When a stream's append takes a snapshot (backbone.aggregate.snapshot_due)."""

from backbone.aggregate import snapshot_due


def test_without_a_known_snapshot_an_append_crossing_a_multiple_of_the_interval_takes_one() -> None:
    assert not snapshot_due(0, 999, 1000, None)
    assert snapshot_due(999, 1000, 1000, None)
    assert snapshot_due(900, 2100, 1000, None)


def test_after_a_snapshot_the_interval_counts_from_it_not_from_its_multiples() -> None:
    # A state of 470 kB has an interval of 4,700 events. Counted as multiples, the next one (9,400)
    # would be 926 events after a snapshot at 8,474, and small batches would snapshot at almost every
    # multiple of a slowly growing interval; counted from the snapshot, it is 4,700 events away.
    assert not snapshot_due(8474, 9474, 4700, 8474)
    assert not snapshot_due(13000, 13173, 4700, 8474)
    assert snapshot_due(13000, 13174, 4700, 8474)


def test_streams_of_small_batches_snapshot_a_growing_state_as_rarely_as_large_batches_do() -> None:
    """Replay the hot-SKU benchmark's shape: ~35 bytes of state per event, interval = size / 100."""

    def snapshots(batch: int, events: int = 150_000) -> int:
        taken, last, every, version = 0, None, 1000, 0
        while version < events:
            before, version = version, version + batch
            if snapshot_due(before, version, every, last):
                taken, last, every = taken + 1, version, max(1000, version * 35 // 100)
        return taken

    # Each snapshot is 35 % of the events further on: 13 of them over 150,000 events, whatever the
    # batch size (counted as multiples of the interval: 58 with batches of 750, 46 with 1,500).
    assert snapshots(750) == snapshots(1500) == 13
