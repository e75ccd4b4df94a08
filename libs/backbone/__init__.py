"""Shared plumbing of the backorder services: contracts, event store, outbox, inbox, consumer loop."""
