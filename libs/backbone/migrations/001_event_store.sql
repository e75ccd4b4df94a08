-- The event store is append-only; the outbox lists the positions the relay has not yet published.
CREATE TABLE event_store (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id       text        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL,
    correlation_id  text        NOT NULL,
    topic           text,       -- logical topic (e.g. 'inventory'); null = kept in the log, never published
    partition_key   text        NOT NULL,
    body            jsonb       NOT NULL, -- the whole envelope
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, stream_version)
);

CREATE TABLE outbox (
    global_position bigint PRIMARY KEY REFERENCES event_store (global_position)
);

-- One notification per inserting statement wakes the relay when the transaction commits.
CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('backorder_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();

-- Ids of consumed events, written in the same transaction as their effects.
CREATE TABLE inbox (
    event_id    uuid PRIMARY KEY,
    consumed_at timestamptz NOT NULL DEFAULT now()
);
