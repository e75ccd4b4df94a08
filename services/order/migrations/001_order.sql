-- Read models of the order service, derived from its event log (services/order/projections.py);
-- `python -m services.order rebuild` truncates and re-derives them. Times come from the envelopes of
-- the order stream's events (when the order service recorded a fact), dates of ETAs from procurement.

-- One row per placed order. An order stream that only holds inventory's or procurement's answers (they
-- can overtake the order itself) has no row here until the order arrives.
CREATE TABLE orders (
    order_id            text        PRIMARY KEY,
    version             integer     NOT NULL, -- of the order stream
    shop_id             text        NOT NULL,
    customer_id         text        NOT NULL,
    email               text        NOT NULL,
    customer_name       text,
    tier                text        NOT NULL,
    currency            text        NOT NULL,
    status              text        NOT NULL,
    status_changed_at   timestamptz, -- when the fact that set `status` was recorded (null only in upserts)
    placed_at           timestamptz NOT NULL,
    urgent              boolean     NOT NULL,
    shipping_preference text        NOT NULL,
    -- The order's own maximum wait; null means the service's DEFAULT_MAX_WAIT_DAYS. The auto-cancel
    -- deadline, placed_at + this many days while `waiting` > 0, is computed when read, so a changed
    -- default applies at once without a rebuild.
    max_wait_days       integer,
    waiting             integer     NOT NULL  -- backordered units still waiting, all lines together
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX orders_waiting ON orders (order_id) WHERE waiting > 0; -- the auto-cancel scheduler's scan

-- One row per order line: the line's books (see services/order/domain.py) and the times reports need.
CREATE TABLE order_lines (
    order_id              text          NOT NULL,
    line_id               text          NOT NULL,
    version               integer       NOT NULL, -- of the order stream event that changed the line last
    sku                   text          NOT NULL,
    unit_price            numeric(14,2) NOT NULL,
    ordered               integer       NOT NULL, -- 0 until the order itself is known
    decided               boolean       NOT NULL, -- inventory has reserved, backordered or rejected every unit
    reserved_at_placement integer       NOT NULL,
    backordered           integer       NOT NULL,
    rejected              integer       NOT NULL,
    rejection_reason      text,
    filled                integer       NOT NULL, -- backordered units filled later
    cancelled_waiting     integer       NOT NULL,
    cancelled_allocated   integer       NOT NULL,
    waiting               integer       NOT NULL, -- backordered - filled - cancelled_waiting
    allocated             integer       NOT NULL, -- reserved_at_placement + filled - cancelled_allocated
    refunded              integer       NOT NULL,
    refunded_amount       numeric(16,2) NOT NULL,
    eta                   date,
    previous_eta          date,
    po_id                 text,
    backordered_at        timestamptz,  -- when the shortfall was recorded
    first_eta             date,         -- the first ETA promised for the line
    first_eta_at          timestamptz,  -- when it was promised
    last_filled_at        timestamptz,  -- the latest fill
    filled_at             timestamptz,  -- the fill that brought `waiting` to 0 (null if a cancel did)
    PRIMARY KEY (order_id, line_id)
);
CREATE INDEX order_lines_open ON order_lines (sku) WHERE waiting > 0;
CREATE INDEX order_lines_filled ON order_lines (filled_at) WHERE filled_at IS NOT NULL;
