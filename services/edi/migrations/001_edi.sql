-- Read models of the EDI adapter, derived from its event log (services/edi/projections.py);
-- `python -m services.edi rebuild` truncates and re-derives them.

-- The purchase orders procurement issued, as last transmitted to their supplier: inbound lines are
-- checked against them (right supplier, right SKU), and a cancellation repeats their last terms.
CREATE TABLE edi_purchase_orders (
    po_id            text        PRIMARY KEY,
    reference        text        NOT NULL UNIQUE, -- the PO number in the documents (outbound.edi_reference)
    supplier_id      text        NOT NULL,
    sku              text        NOT NULL,
    revision         integer     NOT NULL,
    purpose          text        NOT NULL CHECK (purpose IN ('original', 'replace', 'cancel')),
    quantity         integer     NOT NULL,
    unit_cost        numeric(14, 2),
    currency         text,
    expected_arrival date,
    standard         text        NOT NULL,
    control_number   text        NOT NULL,
    file_name        text        NOT NULL,
    transmitted_at   timestamptz NOT NULL
);
CREATE INDEX edi_purchase_orders_transmitted ON edi_purchase_orders (transmitted_at DESC);

-- Accepted interchanges by their envelope: a re-send (same sender and control number) is answered
-- with the stored acknowledgement and changes nothing.
CREATE TABLE edi_interchanges (
    standard        text        NOT NULL,
    sender_id       text        NOT NULL,
    control_number  text        NOT NULL,
    supplier_id     text        NOT NULL,
    source          text        NOT NULL,
    digest          text        NOT NULL,
    messages        integer     NOT NULL,
    events          integer     NOT NULL,
    acknowledgement text        NOT NULL,
    acknowledgement_control_number text NOT NULL,
    received_at     timestamptz NOT NULL,
    PRIMARY KEY (standard, sender_id, control_number)
);
CREATE INDEX edi_interchanges_received ON edi_interchanges (received_at DESC);

-- Refused interchanges, newest first on the API (for the supplier's or staff's correction).
CREATE TABLE edi_rejections (
    id              bigserial   PRIMARY KEY,
    standard        text,
    sender_id       text,
    control_number  text,
    supplier_id     text,
    source          text        NOT NULL,
    digest          text        NOT NULL,
    reason          text        NOT NULL,
    segment         text        NOT NULL,
    segment_position integer    NOT NULL,
    element         integer     NOT NULL,
    acknowledgement text,
    received_at     timestamptz NOT NULL
);
CREATE INDEX edi_rejections_received ON edi_rejections (received_at DESC);

-- The last interchange control number we used towards each supplier (POs and acknowledgements share it,
-- as one interchange sequence per trading partner).
CREATE TABLE edi_control_numbers (
    supplier_id text   PRIMARY KEY,
    last        bigint NOT NULL CHECK (last >= 0)
);
