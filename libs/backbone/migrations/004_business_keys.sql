-- Business facts consumed (a receipt line, a shipment, an order), by their key: recorded in the same
-- transaction as their effects, so a fact re-sent under a new event id has no second effect.
CREATE TABLE business_keys (
    business_key text PRIMARY KEY,
    fingerprint  bytea       NOT NULL, -- sha256 of the payload: other content under the key is refused;
                                       -- '' (backfilled by a service's migration): any content is a replay
    event_id     uuid        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
