"""The public event contract: envelope, payload models, topics, and the registry that decodes them."""

from backbone.contracts.envelope import Envelope, EventPayload, new_envelope
from backbone.contracts.events import CONTRACT_EVENTS, REGISTRY
from backbone.contracts.limits import MAX_EVENT_BYTES, check_event_size
from backbone.contracts.registry import DecodeError, EventRegistry
from backbone.contracts.topics import Topic, dead_letter_topic

__all__ = [
    "CONTRACT_EVENTS",
    "MAX_EVENT_BYTES",
    "REGISTRY",
    "DecodeError",
    "Envelope",
    "EventPayload",
    "EventRegistry",
    "Topic",
    "check_event_size",
    "dead_letter_topic",
    "new_envelope",
]
