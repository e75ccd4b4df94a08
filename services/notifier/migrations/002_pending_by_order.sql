-- The delivery worker holds a message back while an earlier one of its order is pending: this finds
-- those among the pending rows only, however many messages the order has had.
CREATE INDEX notification_delivery_pending_order
    ON notification_delivery (order_id, requested_at, notification_id) WHERE status = 'pending';
