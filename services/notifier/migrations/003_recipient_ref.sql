-- Contract 3.0: a delivery's destination is named by reference (email:<customer_id> or webhook:<shop_id>),
-- never by the address or webhook URL itself; the read model follows the events and forgets the old
-- column. The reference derives from the row alone (projections.py writes it the same way), so a rebuild
-- gives these very values.
ALTER TABLE notification_delivery ADD COLUMN recipient_ref text;
UPDATE notification_delivery
SET recipient_ref = CASE channel WHEN 'webhook' THEN 'webhook:' || shop_id ELSE 'email:' || customer_id END
WHERE channel IS NOT NULL;
ALTER TABLE notification_delivery DROP COLUMN recipient;
