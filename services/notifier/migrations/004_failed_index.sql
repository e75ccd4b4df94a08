-- The operations board asks for the latest failed deliveries (GET /notifications?status=failed&
-- newest_first=true): served from the failed rows alone, not a scan of the whole delivery history.
CREATE INDEX notification_delivery_failed ON notification_delivery (requested_at DESC, notification_id DESC)
    WHERE status = 'failed';
