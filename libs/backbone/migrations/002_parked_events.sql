-- Events the outbox relay can never publish as they are (too large for Kafka, an invalid or missing
-- topic): moved here from the outbox, with the reason, until an operator retries or discards them
-- (POST /outbox/parked/{position}/retry | discard). Later events with the same topic and partition key
-- stay in the outbox meanwhile, so that no key's events reach Kafka out of order.
CREATE TABLE parked_events (
    global_position bigint      PRIMARY KEY REFERENCES event_store (global_position),
    topic           text        NOT NULL,
    partition_key   text        NOT NULL,
    reason          text        NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_events_key ON parked_events (topic, partition_key);
