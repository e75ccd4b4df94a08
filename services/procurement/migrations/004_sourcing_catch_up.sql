-- Issue 8 (services/procurement/sourcing.py): at startup, SKUs with suppliers whose stream never
-- published SkuSourcingChanged (catalogues set before the event existed) are published. This index
-- answers "has this stream published its sourcing?" in one lookup, not a scan of the SKU's stream
-- (a hot SKU's stream holds tens of thousands of events); only those few events are in it.
CREATE INDEX event_store_sourcing ON event_store (stream_id) WHERE event_type = 'SkuSourcingChanged';
