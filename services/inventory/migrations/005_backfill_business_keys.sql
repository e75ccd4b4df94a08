-- Facts applied before business keys were recorded (backbone 004): their keys, with the BACKFILLED
-- fingerprint (any content under them is a replay), so a receipt or an order re-sent under a new event
-- id after the upgrade changes nothing either. Key formats: EventPayload.business_key.
INSERT INTO business_keys (business_key, fingerprint, event_id)
SELECT DISTINCT ON (key) key, '\x'::bytea, event_id
FROM (
    SELECT 'GoodsReceived:' || (body -> 'payload' ->> 'receipt_id') || chr(31) || (body -> 'payload' ->> 'sku')
               AS key,
           event_id
    FROM event_store WHERE event_type = 'StockReceived'
    UNION ALL
    SELECT 'OrderPlaced:' || (body -> 'payload' ->> 'order_id'), event_id
    FROM event_store WHERE event_type IN ('StockReserved', 'StockShort')
) AS applied
ORDER BY key, event_id
ON CONFLICT DO NOTHING;
