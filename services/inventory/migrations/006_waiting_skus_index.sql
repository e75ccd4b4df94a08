-- Issue 9: the operations board's SKUs with the most units waiting (GET /reports/waiting) come from this
-- index in order, however many SKUs the shop has.
CREATE INDEX stock_waiting ON stock (backordered DESC, sku) WHERE waiting_lines > 0;
