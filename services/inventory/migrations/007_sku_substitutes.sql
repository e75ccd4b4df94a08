-- Issue 11: the SKUs a customer may switch a SKU's backordered units to (SkuSubstitutesChanged), in
-- preference order; written from the SKU's state like the other columns of `stock`. Rows written before
-- this migration have none until the SKU's next change (or `python -m services.inventory rebuild`).
ALTER TABLE stock ADD COLUMN substitutes text[] NOT NULL DEFAULT '{}';
