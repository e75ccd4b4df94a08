-- Read models of the procurement service, derived from its event log (services/procurement/projections.py);
-- `python -m services.procurement rebuild` truncates and re-derives them.

-- One row per SKU procurement has heard of: its stock position as procurement sees it.
-- `version` is the SKU stream's version the row reflects.
CREATE TABLE procurement_skus (
    sku           text        PRIMARY KEY,
    version       integer     NOT NULL,
    free_stock    integer     NOT NULL, -- on hand minus reserved; may dip below 0 until a receipt arrives
    backordered   integer     NOT NULL CHECK (backordered >= 0),
    reorder_point integer     NOT NULL,
    safety_stock  integer     NOT NULL,
    on_order      integer     NOT NULL CHECK (on_order >= 0), -- units open POs still have to deliver
    open_need     integer     NOT NULL CHECK (open_need >= 0), -- units needed that nothing covers
    waiting_lines integer     NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- The SKU's supplier catalogue as last set by an admin (an empty catalogue has a row here, no terms).
CREATE TABLE supplier_catalogues (
    sku        text        PRIMARY KEY,
    actor      text        NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE supplier_terms (
    sku                    text          NOT NULL,
    position               integer       NOT NULL, -- as given by the admin
    supplier_id            text          NOT NULL,
    role                   text          NOT NULL CHECK (role IN ('primary', 'alternate')),
    lead_time_days         integer       NOT NULL,
    minimum_order_quantity integer       NOT NULL,
    pack_size              integer       NOT NULL,
    unit_cost              numeric(14,2) NOT NULL,
    currency               text          NOT NULL,
    PRIMARY KEY (sku, supplier_id)
);

-- Every PO issued, at its latest revision; closed ones stay (status) for history and late receipts.
CREATE TABLE purchase_orders (
    po_id              text          PRIMARY KEY,
    sku                text          NOT NULL,
    sequence           integer       NOT NULL, -- the SKU's n-th PO
    supplier_id        text          NOT NULL,
    revision           integer       NOT NULL,
    quantity           integer       NOT NULL,
    unit_cost          numeric(14,2) NOT NULL,
    currency           text          NOT NULL,
    expected_arrival   date          NOT NULL, -- our estimate when issued: issue day + lead time
    confirmed_quantity integer,                -- null until the supplier acknowledges
    confirmed_date     date,
    shipments          jsonb         NOT NULL, -- noticed shipments not received yet
    received_quantity  integer       NOT NULL,
    outstanding        integer       NOT NULL,
    expected_complete  date,                   -- when the last outstanding unit is expected; null when closed
    status             text          NOT NULL CHECK (status IN ('open', 'closed')),
    issued_at          timestamptz   NOT NULL,
    updated_at         timestamptz   NOT NULL,
    UNIQUE (sku, sequence)
);
CREATE INDEX purchase_orders_status ON purchase_orders (status, sku, sequence);

-- The backordered lines waiting per SKU, in allocation order, with the ETA last announced for each.
CREATE TABLE line_etas (
    sku        text        NOT NULL,
    order_id   text        NOT NULL,
    line_id    text        NOT NULL,
    position   integer     NOT NULL, -- 1 is served first
    quantity   integer     NOT NULL,
    eta        date,                 -- null: no purchase order covers the line yet
    po_id      text,
    reason     text        NOT NULL,
    updated_at timestamptz NOT NULL, -- when this ETA was announced
    PRIMARY KEY (sku, order_id, line_id),
    UNIQUE (sku, position)
);
CREATE INDEX line_etas_order ON line_etas (order_id, line_id);
