-- Issue 8: business keys of the orders consumed before the consumer loop recorded them (backbone
-- migration 004_business_keys.sql, applied before every service migration). Without them, a checkout
-- re-sending an old order under a new event id, or the orders topic replayed from its start, would
-- count as a new fact; with other content, an old order would not be refused as a conflict either way.
-- The content those orders arrived with is unknown here, so the fingerprint is '' (backbone
-- business_keys.BACKFILLED): any content under such a key is a replay.
--
-- Key as EventPayload.business_key() builds it: 'OrderPlaced:' || order_id, for the orders this
-- service placed (OrderPlaced, echoed to it by the orders topic) and those a checkout placed
-- (order.OrderRecorded, which holds the OrderPlaced under "order"). The event id is that of the stored
-- event; the earliest wins should both kinds name one order.
INSERT INTO business_keys (business_key, fingerprint, event_id)
SELECT 'OrderPlaced:' || coalesce(body->'payload'->>'order_id', body->'payload'->'order'->>'order_id'),
       '\x'::bytea,
       (body->>'event_id')::uuid
FROM event_store
WHERE event_type IN ('OrderPlaced', 'order.OrderRecorded')
  AND coalesce(body->'payload'->>'order_id', body->'payload'->'order'->>'order_id') IS NOT NULL
ORDER BY global_position
ON CONFLICT DO NOTHING;
