"""Generates the published contract documents from the code: one JSON Schema per event (envelope and
payload) in docs/events/, and an AsyncAPI 3 document (by FastStream) in docs/asyncapi.json.

`python -m backbone.contracts.docs` writes them; `--check` fails when the committed files drift.
"""

import json
import sys
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from backbone.contracts.envelope import Envelope, EventPayload
from backbone.contracts.events import REGISTRY
from backbone.contracts.topics import dead_letter_topic

DOCS = Path(__file__).resolve().parents[3] / "docs"
DEFAULT_PREFIX = "backorder."
CONTRACT_VERSION = "3.1.0"


def _schema_file(model: type[EventPayload]) -> str:
    return f"events/{model.event_type}.v{model.schema_version}.schema.json"


def event_schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for model in REGISTRY.latest_models():
        schema = Envelope[model].model_json_schema()  # type: ignore[valid-type]
        schema["title"] = f"{model.event_type} v{model.schema_version}"
        schema["description"] = (model.__doc__ or "").strip()
        schema["x-topic"] = model.topic.qualified(DEFAULT_PREFIX) if model.topic else None
        schema["x-partition-key"] = f"payload.{model.key_field}"
        out[_schema_file(model)] = schema
    return out


def asyncapi() -> dict[str, Any]:
    broker = KafkaBroker(
        "127.0.0.1:9092", description="Topics are <prefix><name>; the default prefix is 'backorder.'"
    )
    for model in REGISTRY.latest_models():
        if model.topic is None:
            continue
        topic = model.topic.qualified(DEFAULT_PREFIX)
        broker.publisher(
            topic,
            title=f"{topic}:{model.event_type}",
            schema=Envelope[model],  # type: ignore[valid-type]
            description=f"{(model.__doc__ or '').strip()} Key: payload.{model.key_field}. "
            f"Messages that fail validation go to {dead_letter_topic(topic)}.",
        )
    spec = AsyncAPI(broker, title="backorder events", version=CONTRACT_VERSION, schema_version="3.0.0")
    return json.loads(spec.to_specification().to_json())


def documents() -> dict[str, str]:
    docs = {
        name: json.dumps(schema, indent=2, sort_keys=True) + "\n" for name, schema in event_schemas().items()
    }
    docs["asyncapi.json"] = json.dumps(asyncapi(), indent=2, sort_keys=True) + "\n"
    return docs


def drift(root: Path = DOCS) -> list[str]:
    """Files that differ from what the code generates (or are missing, or are left over)."""
    wanted = documents()
    stale = [
        name
        for name, text in wanted.items()
        if not (root / name).is_file() or (root / name).read_text() != text
    ]
    extra = [
        str(p.relative_to(root))
        for p in (root / "events").glob("*.json")
        if str(p.relative_to(root)) not in wanted
    ]
    return stale + extra


def main(argv: list[str]) -> int:
    if "--check" in argv:
        changed = drift()
        for name in changed:
            print(f"out of date: docs/{name} (run `make docs`)")
        return 1 if changed else 0
    (DOCS / "events").mkdir(parents=True, exist_ok=True)
    for old in (DOCS / "events").glob("*.json"):
        old.unlink()
    docs = documents()
    for name, text in docs.items():
        (DOCS / name).write_text(text)
    print(f"wrote {len(docs)} files under {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
