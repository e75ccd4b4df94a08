"""Extract the OpenAPI v3 schemas of CustomResourceDefinitions into the JSON files the manifest tests read.

    git -C <mirror of the operator> show <tag>:<path to the CRD>.yaml > crd.yaml
    python tests/unit/deploy/schemas/extract.py crd.yaml [more CRDs...]

writes `<group>_<version>_<Kind>.json` beside this script for every version the CRD serves. Descriptions
are dropped (they are most of a CRD's size and no part of validation); everything else is kept as the
operator ships it, so the tests see the same constraints as the API server (except CEL rules,
`x-kubernetes-validations`, which jsonschema cannot evaluate: they stay in the files for the reader).
"""

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
# Keywords whose value is a schema, a list of schemas, or a map of names to schemas.
_SCHEMA = ("items", "additionalProperties", "not")
_SCHEMAS = ("allOf", "anyOf", "oneOf")
_NAMED = ("properties", "patternProperties")


def without_descriptions(schema: Any) -> Any:
    """The schema without its `description` keywords (a property *named* description stays)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in _NAMED:
            out[key] = {name: without_descriptions(sub) for name, sub in value.items()}
        elif key in _SCHEMAS:
            out[key] = [without_descriptions(sub) for sub in value]
        elif key in _SCHEMA:
            out[key] = without_descriptions(value)
        else:
            out[key] = value
    return out


def extract(crd: dict[str, Any]) -> list[Path]:
    spec = crd["spec"]
    written = []
    for version in spec["versions"]:
        if not version.get("served", False):
            continue
        path = HERE / f"{spec['group']}_{version['name']}_{spec['names']['kind']}.json"
        schema = without_descriptions(version["schema"]["openAPIV3Schema"])
        path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


def main(paths: list[str]) -> None:
    for name in paths:
        for document in yaml.safe_load_all(Path(name).read_text()):
            if document and document.get("kind") == "CustomResourceDefinition":
                for path in extract(document):
                    print(path.relative_to(HERE))


if __name__ == "__main__":
    main(sys.argv[1:])
