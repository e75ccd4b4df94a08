-- Supplier reliability (GET /reports/suppliers), derived from the receipts against our POs in the log
-- (services/procurement/projections.py). Counts only grow by increments, so receipts of different SKUs
-- of one supplier, written by concurrent transactions, never overwrite each other. Receipts recorded
-- before this migration count after `python -m services.procurement rebuild` (make rebuild).

-- How late the supplier's receipts came against the date it confirmed (our planned date if it never
-- confirmed): receipts per days late, clamped to [-30, 120] (services/procurement/reliability.py).
CREATE TABLE supplier_lateness (
    supplier_id text    NOT NULL,
    days_late   integer NOT NULL CHECK (days_late BETWEEN -30 AND 120),
    receipts    bigint  NOT NULL CHECK (receipts > 0),
    PRIMARY KEY (supplier_id, days_late)
);

-- How well the date we planned with when issuing (issue day + the quoted lead time) held.
CREATE TABLE supplier_eta_accuracy (
    supplier_id          text        PRIMARY KEY,
    receipts             bigint      NOT NULL CHECK (receipts > 0),
    kept                 bigint      NOT NULL CHECK (kept >= 0 AND kept <= receipts),
    abs_error_days_total bigint      NOT NULL CHECK (abs_error_days_total >= 0),
    updated_at           timestamptz NOT NULL
);
