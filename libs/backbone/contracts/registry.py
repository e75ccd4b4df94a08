"""Maps (event_type, schema_version) to payload models; decodes raw bytes and upcasts old versions."""

from collections.abc import Callable, Iterable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from backbone.contracts.envelope import Envelope, EventPayload, envelope_type
from backbone.contracts.topics import Topic

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class DecodeError(Exception):
    """A message that is not a valid event of the contract: it belongs in the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Head(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event_type: str
    schema_version: int


def _explain(error: ValidationError) -> str:
    parts = []
    for e in error.errors(include_url=False)[:10]:
        where = ".".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


class EventRegistry:
    def __init__(self, models: Iterable[type[EventPayload]] = ()) -> None:
        self._models: dict[tuple[str, int], type[EventPayload]] = {}
        self._latest: dict[str, int] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._retired: set[tuple[str, int]] = set()
        for model in models:
            self.register(model)

    def register(self, model: type[EventPayload]) -> None:
        key = (model.event_type, model.schema_version)
        if key in self._models:
            raise ValueError(f"{model.event_type} v{model.schema_version} is registered twice")
        self._models[key] = model
        self._latest[model.event_type] = max(self._latest.get(model.event_type, 0), model.schema_version)

    def register_upcaster(self, event_type: str, from_version: int, upcast: Upcaster) -> None:
        """`upcast` turns a payload of `from_version` (as JSON data) into one of `from_version + 1`."""
        self._upcasters[(event_type, from_version)] = upcast

    def register_retired(self, model: type[EventPayload]) -> None:
        """An old version that cannot be upcast (its meaning changed) but still has to be read: it decodes
        as itself, so stored logs replay, and consumers that only know the latest version skip it."""
        self.register(model)
        self._retired.add((model.event_type, model.schema_version))

    def latest_models(self) -> list[type[EventPayload]]:
        return [self._models[(t, v)] for t, v in sorted(self._latest.items())]

    def model(self, event_type: str, schema_version: int | None = None) -> type[EventPayload]:
        version = schema_version or self._latest.get(event_type)
        try:
            return self._models[(event_type, version)]  # type: ignore[index]
        except KeyError:
            raise DecodeError(f"unknown event type {event_type!r} version {schema_version}") from None

    def route(self, event_type: str, schema_version: int | None, topic: Topic | None) -> type[EventPayload]:
        """The model of a message named `event_type` (v`schema_version`, None: the latest) on `topic`, or
        DecodeError: the type is unknown, or it is published elsewhere (None: a topic outside the contract,
        not checked). Cheap enough for every message, as it needs no parse of the body."""
        model = self.model(event_type, schema_version)
        if topic is not None and model.topic != topic:
            where = f"on {model.topic.value}" if model.topic else "internal to a service, never published"
            raise DecodeError(f"{event_type} does not belong on the {topic.value} topic (it is {where})")
        return model

    def decode(
        self,
        raw: bytes,
        event_type: str | None = None,
        schema_version: int | None = None,
        *,
        topic: Topic | None = None,
    ) -> Envelope[Any]:
        """Validate `raw` as an envelope of its type's latest version, or raise DecodeError with the reason.

        Kafka headers may name type and version so the body is parsed once; the envelope validation
        still checks that they match the body, and a header that disagrees with it is named as the reason.
        `topic`: where the message was read, checked as in `route`.
        """
        if event_type is None or schema_version is None:
            head = self._head(raw)
            if event_type is not None and event_type != head.event_type:
                raise DecodeError(
                    f"event_type header {event_type!r} disagrees with the body's {head.event_type!r}"
                )
            if schema_version is not None and schema_version != head.schema_version:
                raise DecodeError(
                    f"schema_version header {schema_version} disagrees with the body's {head.schema_version}"
                )
            event_type, schema_version = head.event_type, head.schema_version
        model = self.route(event_type, schema_version, topic)
        try:
            envelope = envelope_type(model).model_validate_json(raw)
        except ValidationError as e:
            raise self._disagreement(raw, event_type, schema_version) or DecodeError(
                f"invalid {event_type} v{schema_version}: {_explain(e)}"
            ) from None
        latest = self._latest[event_type]
        if schema_version == latest or (event_type, schema_version) in self._retired:
            return envelope
        return self._upcast(envelope, latest)

    @staticmethod
    def _head(raw: bytes) -> _Head:
        try:
            return _Head.model_validate_json(raw)
        except ValidationError as e:
            raise DecodeError(f"not an event envelope: {_explain(e)}") from None

    @staticmethod
    def _disagreement(raw: bytes, event_type: str, schema_version: int) -> DecodeError | None:
        """After a failed validation by the headers' model: say so if the body is of another type (only on
        this path, so that the headers spare a second parse of every good message)."""
        try:
            head = _Head.model_validate_json(raw)
        except ValidationError:
            return None
        if (head.event_type, head.schema_version) == (event_type, schema_version):
            return None
        return DecodeError(
            f"invalid {event_type} v{schema_version}: the headers say {event_type} v{schema_version} "
            f"but the body is {head.event_type} v{head.schema_version}"
        )

    def _upcast(self, envelope: Envelope[Any], latest: int) -> Envelope[Any]:
        data = envelope.model_dump(mode="json")
        payload = data["payload"]
        for version in range(envelope.schema_version, latest):
            upcast = self._upcasters.get((envelope.event_type, version))
            if upcast is None:
                raise DecodeError(f"no upcaster for {envelope.event_type} v{version} -> v{version + 1}")
            payload = upcast(payload)
        data.update(payload=payload, schema_version=latest)
        model = self._models[(envelope.event_type, latest)]
        try:
            return envelope_type(model).model_validate_json(orjson.dumps(data))
        except ValidationError as e:
            raise DecodeError(
                f"{envelope.event_type} v{envelope.schema_version} upcast failed: {_explain(e)}"
            ) from None
