-- Issue 8: shipping, cancellations confirmed by inventory, and quantities up to the contract's limits
-- (1e9 units per line x 500 lines per order) in bigint.
--
-- Meaning of existing columns from now on (services/order/domain.py): order_lines.cancelled_waiting
-- holds the units inventory dropped from the queue and cancelled_allocated those it released from
-- stock (StockReleased), no longer the units requested; `allocated` includes shipped units. Rows
-- written before this migration keep their old figures until `python -m services.order rebuild`
-- re-derives them from the log (the new columns start at their defaults).

ALTER TABLE orders
    ALTER COLUMN waiting TYPE bigint,
    ADD COLUMN shipped bigint  NOT NULL DEFAULT 0, -- units shipped, all lines together
    ADD COLUMN closed  boolean NOT NULL DEFAULT false; -- every line shipped, cancelled or rejected

ALTER TABLE order_lines
    ALTER COLUMN ordered TYPE bigint,
    ALTER COLUMN reserved_at_placement TYPE bigint,
    ALTER COLUMN backordered TYPE bigint,
    ALTER COLUMN rejected TYPE bigint,
    ALTER COLUMN filled TYPE bigint,
    ALTER COLUMN cancelled_waiting TYPE bigint,
    ALTER COLUMN cancelled_allocated TYPE bigint,
    ALTER COLUMN waiting TYPE bigint,
    ALTER COLUMN allocated TYPE bigint,
    ALTER COLUMN refunded TYPE bigint,
    ADD COLUMN shipped              bigint NOT NULL DEFAULT 0,
    ADD COLUMN cancellation_pending bigint NOT NULL DEFAULT 0; -- requested, not yet confirmed by inventory
