-- Adjustment requests already applied, by the caller's adjustment_id: a retried POST (a timeout, a
-- double click) must not move stock twice. Written in the transaction that appends the StockAdjusted.
-- Not a read model: rebuild leaves it alone.
CREATE TABLE adjustment_requests (
    adjustment_id text        PRIMARY KEY,
    sku           text        NOT NULL,
    delta         integer     NOT NULL,
    reason        text        NOT NULL,
    actor         text        NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT now()
);
