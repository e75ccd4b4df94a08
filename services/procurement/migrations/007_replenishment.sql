-- Demand-driven replenishment (services/procurement/demand.py, replenishment.py, review.py).

-- The demand ledger: units per SKU and UTC day, counted from inventory's StockReserved, StockShort and
-- StockReleased as procurement consumes them (in the consumer's transaction, so each message counts
-- once). It is not derived from procurement's own log, so `rebuild` keeps it. A closed day is recorded
-- in the SKU's stream (DemandRecorded) by the review, which then marks it; units arriving for a day
-- already recorded count on the next open day. Recorded rows are kept for the demand-signals report
-- and dropped after 400 days.
CREATE TABLE procurement_demand_days (
    sku               text    NOT NULL,
    day               date    NOT NULL,
    demanded          bigint  NOT NULL DEFAULT 0 CHECK (demanded >= 0),
    backordered       bigint  NOT NULL DEFAULT 0 CHECK (backordered >= 0),
    rejected          bigint  NOT NULL DEFAULT 0 CHECK (rejected >= 0),
    cancelled         bigint  NOT NULL DEFAULT 0 CHECK (cancelled >= 0),
    recorded          boolean NOT NULL DEFAULT false,
    reviewed_demanded bigint  NOT NULL DEFAULT 0,  -- the open day's units the last review looked at
    PRIMARY KEY (sku, day)
);
-- The review's candidates: the days not recorded yet (the open day of each SKU active today, and any
-- closed day the review has not reached).
CREATE INDEX procurement_demand_days_unrecorded ON procurement_demand_days (sku) WHERE NOT recorded;
CREATE INDEX procurement_demand_days_by_day ON procurement_demand_days (day);

-- Per SKU with replenishment settings or demand recorded: its mode and its demand as of its last
-- recorded day, for the demand-signals report (rebuilt from the log).
CREATE TABLE procurement_replenishment (
    sku                       text             PRIMARY KEY,
    mode                      text             NOT NULL CHECK (mode IN ('manual', 'suggest', 'auto')),
    service_level             numeric          NOT NULL,
    demand_days               integer          NOT NULL,
    last_demand_day           date,
    demand_per_day            double precision NOT NULL,
    fast_rate                 double precision NOT NULL,
    slow_rate                 double precision NOT NULL,
    rising                    boolean          NOT NULL,
    reorder_point             bigint           NOT NULL,
    safety_stock              bigint           NOT NULL,
    updated_at                timestamptz      NOT NULL
);
CREATE INDEX procurement_replenishment_auto ON procurement_replenishment (sku) WHERE mode = 'auto';
CREATE INDEX procurement_replenishment_rising ON procurement_replenishment (sku) WHERE rising;
