"""Idempotency by business key: a fact (a receipt line, a shipment, an order) is applied once, whatever
event id it is re-sent under.

The inbox dedupes by event id; a producer that re-sends a fact builds a new envelope, so that is not
enough. Each consumed payload with a `business_key()` is recorded with a fingerprint of its content in
the same transaction as its effects: the same content again is a replay and is dropped; another content
under a key already seen raises BusinessKeyConflict, which the consumer loop dead-letters with its
message.
"""

import hashlib
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from backbone.contracts import Envelope

# The fingerprint of keys backfilled from an event log written before business keys were recorded (a
# service's migration): the content then is unknown, so any content under such a key counts as a replay.
BACKFILLED = b""


class BusinessKeyConflict(Exception):
    """A payload reuses the business key of an earlier one with other content."""


def fingerprint(envelope: Envelope[Any]) -> bytes:
    return hashlib.sha256(envelope.payload.model_dump_json().encode()).digest()


async def first_applications(
    conn: asyncpg.Connection, envelopes: Sequence[Envelope[Any]]
) -> list[Envelope[Any]]:
    """The envelopes whose business fact is new (in order), after recording their keys; envelopes without
    a key pass through. Replays are left out. Raises BusinessKeyConflict. Call inside the effects'
    transaction, after the inbox."""
    keyed: dict[str, tuple[bytes, UUID]] = {}
    replays: set[UUID] = set()
    for envelope in envelopes:
        key = envelope.payload.business_key()
        if key is None:
            continue
        digest = fingerprint(envelope)
        earlier = keyed.get(key)
        if earlier is None:
            keyed[key] = (digest, envelope.event_id)
        else:  # the same fact twice in one batch
            _check_same(key, earlier[0], digest)
            replays.add(envelope.event_id)
    if keyed:
        keys = list(keyed)
        rows = await conn.fetch(
            "INSERT INTO business_keys (business_key, fingerprint, event_id)"
            " SELECT * FROM unnest($1::text[], $2::bytea[], $3::uuid[]) ON CONFLICT DO NOTHING"
            " RETURNING business_key",
            keys,
            [keyed[k][0] for k in keys],
            [keyed[k][1] for k in keys],
        )
        new = {r["business_key"] for r in rows}
        seen = [k for k in keys if k not in new]
        if seen:
            earlier_rows = await conn.fetch(
                "SELECT business_key, fingerprint FROM business_keys WHERE business_key = ANY($1::text[])",
                seen,
            )
            for row in earlier_rows:
                key = row["business_key"]
                _check_same(key, bytes(row["fingerprint"]), keyed[key][0])
                replays.add(keyed[key][1])
    return [e for e in envelopes if e.event_id not in replays]


def _check_same(key: str, earlier: bytes, digest: bytes) -> None:
    if earlier not in (digest, BACKFILLED):
        kind, _, value = key.partition(":")
        raise BusinessKeyConflict(
            f"{kind} {value.replace(chr(31), ' / ')!r} was applied before with other content; "
            "a business key names one fact: send a correction under a new key"
        )
