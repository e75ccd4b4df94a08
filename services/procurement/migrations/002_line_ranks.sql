-- Waiting lines keep their rank instead of their place in the queue (services/procurement/projections.py):
-- a stored place made one line joining ahead renumber every line behind it, so each change rewrote the
-- SKU's rows. Queries number the lines by rank: priority_score DESC, placed_at, sequence, order_id, line_id.
ALTER TABLE line_etas DROP CONSTRAINT line_etas_sku_position_key;
ALTER TABLE line_etas
    ADD COLUMN priority_score numeric NOT NULL DEFAULT 0, -- 0 under first come, first served
    ADD COLUMN placed_at timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    ADD COLUMN sequence bigint NOT NULL DEFAULT 0; -- the line's arrival number within the SKU
-- Rows written before ranks were known came from whole-queue snapshots: they keep their order as the
-- sequence of a score of 0 placed at the start of time, as a rebuild folds those snapshots.
UPDATE line_etas SET sequence = position;
ALTER TABLE line_etas
    ALTER COLUMN priority_score DROP DEFAULT,
    ALTER COLUMN placed_at DROP DEFAULT,
    ALTER COLUMN sequence DROP DEFAULT,
    DROP COLUMN position,
    ALTER COLUMN quantity TYPE bigint;
CREATE INDEX line_etas_rank ON line_etas (sku, priority_score DESC, placed_at, sequence, order_id, line_id);

-- Unit figures of a SKU that sells out can outgrow an integer.
ALTER TABLE procurement_skus
    ALTER COLUMN free_stock TYPE bigint,
    ALTER COLUMN backordered TYPE bigint,
    ALTER COLUMN reorder_point TYPE bigint,
    ALTER COLUMN safety_stock TYPE bigint,
    ALTER COLUMN on_order TYPE bigint,
    ALTER COLUMN open_need TYPE bigint,
    ALTER COLUMN waiting_lines TYPE bigint;
ALTER TABLE purchase_orders
    ALTER COLUMN quantity TYPE bigint,
    ALTER COLUMN confirmed_quantity TYPE bigint,
    ALTER COLUMN received_quantity TYPE bigint,
    ALTER COLUMN outstanding TYPE bigint;
