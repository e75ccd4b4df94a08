-- The trace of the flow that requested a notification (null while traces are off, and for rows rebuilt
-- from the log): the delivery job carries it on to NotificationSent / NotificationFailed.
ALTER TABLE notification_delivery ADD COLUMN traceparent text;
