-- Issue 8 (services/procurement/projections.py):
-- Unit figures of supplier terms as bigint, like every other quantity column (contract: up to 1e9 per
-- line); the figures of procurement_skus, purchase_orders and line_etas became bigint in 002.
ALTER TABLE supplier_terms
    ALTER COLUMN minimum_order_quantity TYPE bigint,
    ALTER COLUMN pack_size TYPE bigint;

-- Unconfirmed POs no longer needed are cancelled: a status of their own (not closed by delivery).
ALTER TABLE purchase_orders DROP CONSTRAINT purchase_orders_status_check;
ALTER TABLE purchase_orders
    ADD CONSTRAINT purchase_orders_status_check CHECK (status IN ('open', 'closed', 'cancelled'));

-- When the PO's first outstanding units are expected (null when nothing is to come): the daily job
-- re-plans the SKUs of open POs due before today. Existing rows get their confirmed or estimated date,
-- or an earlier noticed shipment's; a rebuild derives the exact value.
ALTER TABLE purchase_orders ADD COLUMN due_date date;
UPDATE purchase_orders SET due_date = least(
    coalesce(confirmed_date, expected_arrival),
    (SELECT min((s ->> 'expected_date')::date) FROM jsonb_array_elements(shipments) AS s)
) WHERE status = 'open';
CREATE INDEX purchase_orders_due ON purchase_orders (due_date, sku) WHERE status = 'open';

-- Whether the SKU has a supplier to buy from: staff list the SKUs with waiting lines and none
-- (GET /reports/unsourced).
ALTER TABLE procurement_skus ADD COLUMN sourced boolean NOT NULL DEFAULT false;
UPDATE procurement_skus AS s SET sourced = EXISTS (SELECT 1 FROM supplier_terms AS t WHERE t.sku = s.sku);
ALTER TABLE procurement_skus ALTER COLUMN sourced DROP DEFAULT;
CREATE INDEX procurement_skus_unsourced ON procurement_skus (sku) WHERE NOT sourced AND waiting_lines > 0;
