-- Read models of the inventory service, derived from its event log (services/inventory/projections.py);
-- `python -m services.inventory rebuild` truncates and re-derives them.

-- One row per SKU: its current state. `version` is the SKU stream's version the row reflects.
CREATE TABLE stock (
    sku              text    PRIMARY KEY,
    version          integer NOT NULL,
    on_hand          integer NOT NULL,
    reserved         integer NOT NULL,
    available        integer NOT NULL,
    backordered      integer NOT NULL,
    backorder_policy text    NOT NULL,
    backorder_cap    integer,
    reorder_point    integer NOT NULL,
    safety_stock     integer NOT NULL,
    CHECK (reserved <= on_hand)
);

-- The lines waiting for stock, per SKU in allocation order (position 1 is served first).
CREATE TABLE backorder_queue (
    sku      text    NOT NULL,
    position integer NOT NULL,
    order_id text    NOT NULL,
    line_id  text    NOT NULL,
    quantity integer NOT NULL,
    PRIMARY KEY (sku, position)
);

-- Who got which units, when and why: reservations at placement and fills of backorders.
CREATE TABLE allocation_audit (
    sku             text        NOT NULL,
    version         integer     NOT NULL, -- of the SKU stream event that allocated
    event_id        uuid        NOT NULL,
    order_id        text        NOT NULL,
    line_id         text        NOT NULL,
    quantity        integer     NOT NULL,
    source          text        NOT NULL,
    priority_reason text        NOT NULL,
    at              timestamptz NOT NULL,
    PRIMARY KEY (sku, version)
);
CREATE INDEX allocation_audit_order ON allocation_audit (order_id, line_id);
