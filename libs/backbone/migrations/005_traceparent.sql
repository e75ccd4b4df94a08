-- The W3C traceparent of the span that appended the event (null while traces are off), so the relay
-- can carry the trace on in the Kafka headers when it publishes the event later, from another task.
ALTER TABLE event_store ADD COLUMN traceparent text;
