-- Issue 9: the operations board's rates over time (GET /reports/rates) read the orders placed in their
-- window only; this index finds them without scanning every order ever placed.
CREATE INDEX orders_placed_at ON orders (placed_at);
