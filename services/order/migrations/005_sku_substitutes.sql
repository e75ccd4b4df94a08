-- Issue 11: what inventory lists as a SKU's substitutes (SkuSubstitutesChanged, inventory topic), so that
-- a switch (POST /orders/{order_id}/lines/{line_id}/substitution) goes only to a listed one. Kept from
-- the consumed events themselves (each replaces the SKU's whole list), not from the order log: a
-- rebuild of the order read models leaves this table alone.
CREATE TABLE sku_substitutes (
    sku         text        PRIMARY KEY,
    substitutes text[]      NOT NULL, -- preference order; empty: none
    changed_at  timestamptz NOT NULL  -- occurred_at of the event: an older one never overwrites it
);
