-- Issue 11: the backordered message offers substitutes in stock. Two small read models kept from the
-- inventory topic itself (not from the notifier's log, so `rebuild` leaves them alone; what a message
-- offered is recorded in its NotificationRequested): each SKU's substitutes (SkuSubstitutesChanged, the
-- whole list, preferred first) and its latest available units (StockLevelChanged sets them; StockReserved
-- takes units; StockShort leaves none), one row per SKU, written once per SKU per consumed batch.
CREATE TABLE sku_substitutes (
    sku         text   PRIMARY KEY,
    substitutes text[] NOT NULL
);

CREATE TABLE sku_availability (
    sku       text   PRIMARY KEY,
    available bigint NOT NULL
);

-- The SKUs of the order's lines awaiting their backordered message: what the announcement pass reads the
-- substitutes of. Rows written before this migration have none until the order's next change.
ALTER TABLE backorder_announcement ADD COLUMN skus text[] NOT NULL DEFAULT '{}';
