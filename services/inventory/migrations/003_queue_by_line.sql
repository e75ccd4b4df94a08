-- The backorder queue read model keyed by line, with the line's rank instead of a stored position:
-- one line joining, shrinking or leaving writes one row (positions are numbered when read), where a
-- position column made every change renumber the lines behind it. Quantities become bigint (the
-- contract allows 1e9 per line and more in sum).
DROP TABLE backorder_queue;
CREATE TABLE backorder_queue (
    sku            text          NOT NULL,
    order_id       text          NOT NULL,
    line_id        text          NOT NULL,
    quantity       bigint        NOT NULL CHECK (quantity > 0), -- units still waiting
    priority_score numeric(12,2) NOT NULL,                      -- allocation order: score desc,
    placed_at      timestamptz   NOT NULL,                      -- then placement,
    sequence       bigint        NOT NULL,                      -- then arrival within the SKU
    PRIMARY KEY (sku, order_id, line_id)
);
CREATE INDEX backorder_queue_rank ON backorder_queue (sku, priority_score DESC, placed_at, sequence);

-- Re-derive the waiting lines from the log (a read model is the log's fold): what each queued line
-- asked for, less what fills and cancellations took. Lines queued before priority scores were recorded
-- rank as under first come, first served, exactly as the state folds them.
INSERT INTO backorder_queue (sku, order_id, line_id, quantity, priority_score, placed_at, sequence)
SELECT q.sku, q.order_id, q.line_id, q.quantity - coalesce(t.taken, 0), q.score, q.placed_at, q.sequence
FROM (
    SELECT body->'payload'->>'sku' AS sku, body->'payload'->>'order_id' AS order_id,
           body->'payload'->>'line_id' AS line_id, (body->'payload'->>'quantity')::bigint AS quantity,
           coalesce((body->'payload'->>'priority_score')::numeric, 0) AS score,
           (body->'payload'->>'placed_at')::timestamptz AS placed_at,
           (body->'payload'->>'sequence')::bigint AS sequence
    FROM event_store WHERE event_type = 'BackorderQueued'
) q
LEFT JOIN (
    SELECT body->'payload'->>'sku' AS sku, body->'payload'->>'order_id' AS order_id,
           body->'payload'->>'line_id' AS line_id,
           sum(CASE event_type WHEN 'BackorderFulfilled' THEN (body->'payload'->>'quantity')::bigint
                               ELSE (body->'payload'->>'dropped_backordered')::bigint END) AS taken
    FROM event_store WHERE event_type IN ('BackorderFulfilled', 'StockReleased')
    GROUP BY 1, 2, 3
) t USING (sku, order_id, line_id)
WHERE q.quantity - coalesce(t.taken, 0) > 0;

ALTER TABLE stock
    ALTER COLUMN on_hand TYPE bigint, ALTER COLUMN reserved TYPE bigint,
    ALTER COLUMN available TYPE bigint, ALTER COLUMN backordered TYPE bigint,
    ALTER COLUMN backorder_cap TYPE bigint, ALTER COLUMN reorder_point TYPE bigint,
    ALTER COLUMN safety_stock TYPE bigint;
ALTER TABLE allocation_audit ALTER COLUMN quantity TYPE bigint;
-- Lines waiting per SKU, kept with its figures so that showing it does not count the queue.
ALTER TABLE stock ADD COLUMN waiting_lines bigint NOT NULL DEFAULT 0;
UPDATE stock SET waiting_lines = q.lines
FROM (SELECT sku, count(*) AS lines FROM backorder_queue GROUP BY sku) q WHERE q.sku = stock.sku;
