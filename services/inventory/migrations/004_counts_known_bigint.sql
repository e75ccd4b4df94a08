-- Issue 8: cycle counts, known/sourced SKUs, and bigint for every remaining quantity column.

-- Every quantity column is bigint (the contract allows 1e9 per line and more in sum). The stock,
-- backorder_queue and allocation_audit quantities became bigint in 003; stream versions stay integer.
ALTER TABLE adjustment_requests ALTER COLUMN delta TYPE bigint;

-- Count requests already applied, by the caller's count_id (like adjustment_requests): a retried POST
-- answers as the first did; the same count_id with other content is refused. Not a read model.
CREATE TABLE count_requests (
    count_id   text        PRIMARY KEY,
    sku        text        NOT NULL,
    counted    bigint      NOT NULL,
    reason     text        NOT NULL,
    actor      text        NOT NULL,
    counted_at timestamptz NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Whether the SKU is known (ever stocked, counted, given a policy or a supplier) and has a supplier
-- now, as the SKU's state folds them (services/inventory/domain.py). Before this migration only stock
-- events and policy changes could make a SKU known.
ALTER TABLE stock ADD COLUMN known boolean NOT NULL DEFAULT false,
                  ADD COLUMN sourced boolean NOT NULL DEFAULT false;
UPDATE stock SET known = true
WHERE sku IN (
    SELECT substr(stream_id, 5) FROM event_store
    WHERE stream_id LIKE 'sku:%' AND event_type IN ('StockReceived', 'StockAdjusted', 'SkuPolicyChanged')
);
