-- Read models of the notifier, derived from its event log (services/notifier/projections.py);
-- `python -m services.notifier rebuild` truncates and re-derives them. Only `claimed_until` and
-- `claim_token` are not derived: they are the delivery workers' leases.

-- The delivery queue: one row per notification id, whatever redelivery or replay requested it again.
CREATE TABLE notification_delivery (
    notification_id text        PRIMARY KEY,
    kind            text        NOT NULL,
    customer_id     text        NOT NULL,
    shop_id         text        NOT NULL,
    email           text        NOT NULL,  -- the customer's address (the recipient unless the shop has a webhook)
    order_id        text,
    line_id         text,
    sku             text,                  -- null for a cancellation, which may span several SKUs
    subject         text        NOT NULL,
    notification    jsonb       NOT NULL,  -- the whole Notification, so a worker renders without the log
    correlation_id  text        NOT NULL,  -- of the request; the outcome events keep it
    status          text        NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    channel         text        CHECK (channel IN ('email', 'webhook')),  -- of the last attempt; null before
    recipient       text,                  -- address or webhook URL of the last attempt
    attempts        integer     NOT NULL CHECK (attempts >= 0),
    next_attempt_at timestamptz,           -- when a pending row is due; null once sent or failed
    last_error      text,
    requested_at    timestamptz NOT NULL,  -- occurred_at of the NotificationRequested event
    updated_at      timestamptz NOT NULL,  -- occurred_at of the last event applied to the row
    claimed_until   timestamptz,           -- lease of the worker sending it now (not derived)
    claim_token     uuid,                  -- which claim holds the lease (not derived)
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX notification_delivery_due ON notification_delivery (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_delivery_order ON notification_delivery (order_id, requested_at);
CREATE INDEX notification_delivery_customer ON notification_delivery (customer_id, requested_at);

-- Orders with a backordered line still waiting for its first ETA, since when: the announcement pass
-- sends the backordered message without a date once the grace period (a setting) has run out.
CREATE TABLE backorder_announcement (
    order_id           text        PRIMARY KEY,
    awaiting_eta_since timestamptz NOT NULL
);
CREATE INDEX backorder_announcement_since ON backorder_announcement (awaiting_eta_since);

-- Per SKU: the backorder policy last seen from inventory (null: none seen yet), at `version` of the stream.
CREATE TABLE sku_watch (
    sku              text    PRIMARY KEY,
    version          integer NOT NULL,
    backorder_policy text    CHECK (backorder_policy IN ('deny', 'allow', 'cap'))
);

-- Open back-in-stock subscriptions; one ends with its message or when the customer withdraws it.
CREATE TABLE back_in_stock_subscription (
    sku           text        NOT NULL,
    customer_id   text        NOT NULL,
    email         text        NOT NULL,
    customer_name text,
    shop_id       text        NOT NULL,
    subscribed_at timestamptz NOT NULL,
    PRIMARY KEY (sku, customer_id)
);
