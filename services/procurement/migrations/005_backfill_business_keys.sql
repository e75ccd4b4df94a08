-- Issue 8 (libs/backbone/business_keys.py): the business keys of the facts procurement applied before
-- keys were recorded, so that one re-sent under a new event id after the upgrade is not applied again.
-- Their content is unknown here: the empty fingerprint (BACKFILLED) takes any content under the key as
-- a replay. Keys as EventPayload.business_key builds them: '<event type>:' || the key fields joined by
-- chr(31). backbone/004_business_keys.sql (the table) runs first: backbone migrations precede a
-- service's (backbone.db.migration_files).

-- Receipts, from the ReceiptRecorded each one counted: GoodsReceived(receipt_id, sku). (Shipment notices
-- have no key: a notice re-sent under its asn_id replaces the earlier one.)
INSERT INTO business_keys (business_key, fingerprint, event_id)
SELECT DISTINCT ON (key) key, ''::bytea, event_id
FROM (
    SELECT 'GoodsReceived:' || (body -> 'payload' ->> 'receipt_id') || chr(31) || (body -> 'payload' ->> 'sku')
               AS key,
           event_id, global_position
    FROM event_store
    WHERE event_type = 'ReceiptRecorded'
) AS receipts
WHERE key IS NOT NULL
ORDER BY key, global_position
ON CONFLICT DO NOTHING;

