-- The latest snapshot of a long stream: its folded state at `version`, so a cold load reads it plus a
-- short tail instead of the whole stream. Only a shortcut (rebuilds read the log itself): `state_shape`
-- names the code that folded it, and a snapshot of another shape, or whose last event is not the
-- stream's event at that version, is ignored.
CREATE TABLE snapshots (
    stream_id     text        PRIMARY KEY,
    version       integer     NOT NULL CHECK (version > 0),
    last_event_id uuid        NOT NULL,
    state_shape   text        NOT NULL,
    state         bytea       NOT NULL,
    taken_at      timestamptz NOT NULL DEFAULT now()
);
